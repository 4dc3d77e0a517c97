"""sudo over the transport, against macsim's strict sudo (macOS sudo 1.9 messages; password read from stdin
line by line, so anything the transport sent too early WOULD be read as a password attempt)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from macsim.fleet import Fleet
from macsim.spec import FleetSpec, HostSpec
from workers.ssh import (
    NOPASSWD,
    Connection,
    HostKeyPolicy,
    SshAuth,
    SshTarget,
    SudoAuthFailed,
    SudoError,
    SudoMode,
    SudoNotAllowed,
    SudoRequiresPassword,
    connect,
)
from workers.ssh.sudo import SudoGate, wrap

PASSWORD = "canary-sudo-pw-2718"


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    spec = FleetSpec(
        hosts=[
            HostSpec(name="nopasswd"),
            HostSpec(name="withpw", sudo="password", password=PASSWORD),
            HostSpec(name="nosudo", sudo="none", password=PASSWORD),
        ]
    )
    async with Fleet.start(spec) as running:
        yield running


async def _connect(fleet: Fleet, name: str) -> Connection:
    host = fleet.hosts[name]
    return await connect(
        SshTarget(host.address, host.spec.user, host.port),
        HostKeyPolicy.pin([host.host_key_public]),
        SshAuth(key_files=(fleet.client_key_path,)),
    )


def _commands(fleet: Fleet, name: str) -> str:
    return "\n".join(rec.command for rec in fleet.hosts[name].mac.commands)


async def test_nopasswd_runs_as_root_with_input(fleet: Fleet) -> None:
    async with await _connect(fleet, "nopasswd") as conn:
        who = await conn.run(["whoami"], sudo=NOPASSWD)
        assert (who.exit_status, who.stdout, who.stderr) == (0, b"root\n", b"")
        echoed = await conn.run(["cat"], sudo=NOPASSWD, input=b"first line\nsecond\n")
        assert echoed.stdout == b"first line\nsecond\n"
    assert "sudo -n --" in _commands(fleet, "nopasswd")


async def test_password_mode_authenticates_then_sends_input(fleet: Fleet) -> None:
    mode = SudoMode(password=PASSWORD.encode())
    async with await _connect(fleet, "withpw") as conn:
        who = await conn.run(["whoami"], sudo=mode)
        assert who.stdout == b"root\n" and who.stderr == b""  # no prompt, no READY token left in stderr
        data = b"add-trusted-cert line\n" * 2000
        echoed = await conn.run(["cat"], sudo=mode, input=data)
        assert echoed.stdout == data
    log = _commands(fleet, "withpw")
    assert "sudo -S -p" in log
    assert PASSWORD not in log  # the password never reaches a command line on the Mac


async def test_password_mode_on_a_nopasswd_host_does_not_leak_the_password_into_input(fleet: Fleet) -> None:
    # sudo does not prompt here: the password must NOT be written, or `cat` would echo it.
    async with await _connect(fleet, "nopasswd") as conn:
        echoed = await conn.run(["cat"], sudo=SudoMode(password=PASSWORD.encode()), input=b"payload\n")
    assert echoed.stdout == b"payload\n"


async def test_wrong_password_is_typed_fast_and_input_never_becomes_an_attempt(fleet: Fleet) -> None:
    # The command's input starts with the RIGHT password: if the transport sent input before sudo had
    # accepted the (wrong) password, sudo would take that line as its second attempt and run the command.
    mode = SudoMode(password=b"wrong-password", auth_timeout=10)
    async with await _connect(fleet, "withpw") as conn:
        started = time.monotonic()
        with pytest.raises(SudoAuthFailed) as caught:
            await conn.run(["cat"], sudo=mode, input=PASSWORD.encode() + b"\nsecret lines\n")
        assert time.monotonic() - started < 5
        message = str(caught.value)
        assert "sudo refused the password" in message and "was not run" in message
        assert PASSWORD not in message and "wrong-password" not in message
        assert "wrong-password" not in repr(mode)
        # the connection is still good for the next command
        assert (await conn.run(["true"])).ok


async def test_nopasswd_on_a_password_host_requires_password(fleet: Fleet) -> None:
    async with await _connect(fleet, "withpw") as conn:
        with pytest.raises(SudoRequiresPassword, match="sudo: a password is required") as caught:
            await conn.run(["whoami"], sudo=NOPASSWD, input=b"never read\n")
    assert "store the account's sudo password" in caught.value.hint


async def test_user_outside_sudoers_is_not_allowed(fleet: Fleet) -> None:
    async with await _connect(fleet, "nosudo") as conn:
        with pytest.raises(SudoNotAllowed, match="is not in the sudoers file") as caught:
            await conn.run(["whoami"], sudo=SudoMode(password=PASSWORD.encode()))
    assert "administrator account" in caught.value.hint


async def test_script_under_sudo_reports_each_step(fleet: Fleet) -> None:
    async with await _connect(fleet, "withpw") as conn:
        result = await conn.run_script(
            [["whoami"], ["sh", "-c", "echo half; exit 2"], ["whoami"]],
            sudo=SudoMode(password=PASSWORD.encode()),
        )
    assert [s.exit_status for s in result.steps] == [0, 2, None]
    assert result.steps[0].stdout == b"root\n" and result.steps[1].stdout == b"half\n"
    assert conn.round_trips == 1


def test_password_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="must not contain a line break"):
        SudoMode(password=b"a\nb")


def test_wrap_puts_no_secret_in_argv_and_uses_fresh_tokens() -> None:
    mode = SudoMode(password=b"hunter2")
    one, two = wrap(["id"], mode), wrap(["id"], mode)
    assert "hunter2" not in " ".join(one.argv)
    assert one.argv[:3] == ["sudo", "-S", "-p"] and one.argv[-1] == "id"
    assert one.prompt != two.prompt and one.ready != two.ready
    assert b"%" not in one.prompt  # sudo expands %-escapes in prompts
    assert wrap(["id"], NOPASSWD).argv[:3] == ["sudo", "-n", "--"]


@pytest.mark.parametrize(
    ("stderr", "kind", "text"),
    [
        (b"sudo: a password is required\n", SudoRequiresPassword, "needs a password"),
        (
            b"Sorry, user admin is not allowed to execute '/bin/sh -c x' as root on mac-01.\n",
            SudoNotAllowed,
            "may not use sudo",
        ),
        (b"sudo: 3 incorrect password attempts\n", SudoAuthFailed, "refused the password"),
        (b"sh: sudo: command not found\n", SudoError, "exit 127"),
    ],
)
def test_refusal_classification(stderr: bytes, kind: type[SudoError], text: str) -> None:
    gate = SudoGate(NOPASSWD, wrap(["id"], NOPASSWD), "mac-01", 22)
    err = gate.refusal(stderr, 127 if kind is SudoError else 1)
    assert type(err) is kind
    assert text in str(err) and "mac-01:22" in str(err)
