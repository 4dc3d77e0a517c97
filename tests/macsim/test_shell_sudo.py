"""sudo under each policy, and the fault knobs."""

from __future__ import annotations

import asyncio

import pytest

from macsim.mac import VirtualMac
from macsim.shell.interp import run_exec
from macsim.shell.streams import BufferOutput, BytesStdin

from .shell_fixtures import make_mac, run

NO_TTY = (
    "sudo: a terminal is required to read the password; either use the -S option to read from standard "
    "input or configure an askpass helper\nsudo: a password is required\n"
)


@pytest.fixture(scope="module")
def pw_mac(tmp_path_factory: pytest.TempPathFactory) -> VirtualMac:
    return make_mac(tmp_path_factory.mktemp("sudo-pw"), sudo="password", password="s3cret")


async def test_nopasswd_runs_as_root(tmp_path) -> None:
    mac = make_mac(tmp_path)
    r = await run(mac, "sudo id -u; sudo -n whoami; sudo sh -c 'echo $HOME $USER'; id -un")
    assert (r.status, r.out, r.err) == (0, "0\nroot\n/var/root root\nadmin\n", "")
    r = await run(mac, "sudo mkdir /Library/x && ls -d /Library/x")
    assert r.out == "/Library/x\n"
    assert mac.fs.owner("/Library/x") == 0


async def test_password_policy_without_s_or_with_n(pw_mac: VirtualMac) -> None:
    r = await run(pw_mac, "sudo -n true")
    assert (r.status, r.err) == (1, "sudo: a password is required\n")
    r = await run(pw_mac, "sudo true", stdin=b"s3cret\n")
    assert (r.status, r.err) == (1, NO_TTY)


async def test_correct_password_leaves_the_rest_of_stdin_to_the_command(pw_mac: VirtualMac) -> None:
    r = await run(pw_mac, "sudo -S -p 'pw:' cat", stdin=b"s3cret\nline1\nline2\n")
    assert (r.status, r.out, r.err) == (0, "line1\nline2\n", "pw:")


async def test_wrong_passwords_consume_three_lines_only(pw_mac: VirtualMac) -> None:
    r = await run(pw_mac, "sudo -S true; cat", stdin=b"a\nb\nc\nkept\n")
    sorry = "Password:Sorry, try again.\n"
    assert r.err == sorry * 2 + "Password:sudo: 3 incorrect password attempts\n"
    assert r.out == "kept\n"
    r = await run(pw_mac, "sudo -S true", stdin=b"s3cret\n")
    assert r.status == 0


async def test_second_wrong_then_right(pw_mac: VirtualMac) -> None:
    r = await run(pw_mac, "sudo -S id -u", stdin=b"nope\ns3cret\n")
    assert (r.status, r.out, r.err) == (0, "0\n", "Password:Sorry, try again.\nPassword:")


async def test_eof_at_prompt(pw_mac: VirtualMac) -> None:
    r = await run(pw_mac, "sudo -S true", stdin=b"")
    assert (r.status, r.err) == (
        1,
        "Password:\nsudo: no password was provided\nsudo: a password is required\n",
    )
    r = await run(pw_mac, "sudo -S true", stdin=b"bad\n")
    assert r.err.endswith("sudo: no password was provided\nsudo: 1 incorrect password attempt\n")


async def test_credentials_cached_per_exec_only(pw_mac: VirtualMac) -> None:
    r = await run(pw_mac, "sudo -S -v && sudo -n id -u && sudo -k && sudo -n true", stdin=b"s3cret\n")
    assert (r.status, r.out) == (1, "0\n")
    assert r.err.endswith("sudo: a password is required\n")
    r = await run(pw_mac, "sudo -n true")  # a new exec request: a new session
    assert r.status == 1


async def test_none_policy(tmp_path) -> None:
    mac = make_mac(tmp_path, sudo="none", password="pw")
    r = await run(mac, "sudo -S id", stdin=b"pw\n")
    assert (r.status, r.out) == (1, "")
    assert r.err == "Password:admin is not in the sudoers file.  This incident will be reported.\n"


@pytest.mark.parametrize(
    ("command", "first_err"),
    [
        ("sudo -Z true", "sudo: illegal option -- Z"),
        ("sudo", "usage: sudo -h | -K | -k | -V"),
        ("sudo -u", "sudo: option requires an argument -- u"),
    ],
)
async def test_sudo_usage_errors(tmp_path, command: str, first_err: str) -> None:
    mac = make_mac(tmp_path)
    r = await run(mac, command)
    assert r.status == 1
    assert r.err.splitlines()[0] == first_err
    assert "usage: sudo -v [-ABkNnS]" in r.err


async def test_sudo_command_not_found(tmp_path) -> None:
    mac = make_mac(tmp_path)
    r = await run(mac, "sudo cd /")
    assert (r.status, r.err) == (1, "sudo: cd: command not found\n")


async def test_fail_tool_fault_read_live(tmp_path) -> None:
    mac = make_mac(tmp_path)
    assert (await run(mac, "hostname")).status == 0
    mac.spec.faults.fail_tools = {"hostname": 3}
    r = await run(mac, "hostname; echo $?")
    assert (r.out, r.err) == ("3\n", "hostname: simulated failure\n")
    r = await run(mac, "sudo hostname")
    assert r.status == 3


async def test_hang_tool_is_cancellable(tmp_path) -> None:
    mac = make_mac(tmp_path)
    mac.spec.faults.hang_tools = ["sw_vers"]
    task = asyncio.ensure_future(run_exec(mac, "sw_vers", BytesStdin(), BufferOutput(), BufferOutput()))
    done, _ = await asyncio.wait({task}, timeout=0.3)
    assert not done
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
