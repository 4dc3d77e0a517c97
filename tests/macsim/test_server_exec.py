"""The SSH server over real SSH (asyncssh client): exec, stdin streaming, exit status, logging, auth, keys."""

from __future__ import annotations

import asyncio
import json

import asyncssh
import pytest

from macsim.fleet import Fleet, SimHost
from macsim.server import HANGUP_STATUS, SHELL_LOG_TEXT

from .conftest import connect


async def _wait_for(cond, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_exec_output_status_and_command_log(fleet: Fleet, host: SimHost) -> None:
    async with connect(fleet, host) as conn:
        ok = await conn.run("echo hello mac", check=False)
        bad = await conn.run("frobnicate --now", check=False)
        failed = await conn.run("exit 7", check=False)
    assert (ok.stdout, ok.exit_status) == ("hello mac\n", 0)
    assert bad.stderr == "zsh: command not found: frobnicate\n"
    assert bad.exit_status == 127
    assert failed.exit_status == 7
    log = [(c.user, c.command, c.exit_status) for c in host.mac.commands]
    assert log == [("admin", "echo hello mac", 0), ("admin", "frobnicate --now", 127), ("admin", "exit 7", 7)]
    lines = (host.state_dir / "commands.jsonl").read_text().splitlines()
    assert [json.loads(line)["command"] for line in lines] == ["echo hello mac", "frobnicate --now", "exit 7"]


async def test_stdin_is_streamed_and_never_logged(fleet: Fleet, host: SimHost) -> None:
    secret = "pfx-one-time-Zq9"
    async with connect(fleet, host) as conn:
        proc = await conn.create_process("readline\ncat")
        proc.stdin.write(f"{secret}\n")
        # The first line comes back before stdin is closed: the command sees stdin as it arrives.
        first = await asyncio.wait_for(proc.stdout.readline(), 5)
        assert first == f"{secret}\n"
        proc.stdin.write("rest of it")
        proc.stdin.write_eof()
        rest = await asyncio.wait_for(proc.stdout.read(), 5)
        result = await proc.wait()
    assert rest == "rest of it"
    assert result.exit_status == 0
    assert all(secret not in c.command for c in host.mac.commands)
    assert secret not in (host.state_dir / "commands.jsonl").read_text()


async def test_large_stdin_round_trips_in_order(fleet: Fleet, host: SimHost) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB, more than one SSH window
    async with connect(fleet, host) as conn:
        result = await conn.run("cat", input=data, encoding=None, check=False)
    assert result.stdout == data
    assert result.exit_status == 0


async def test_closing_the_channel_cancels_the_command(fleet: Fleet, host: SimHost) -> None:
    async with connect(fleet, host) as conn:
        proc = await conn.create_process("sleep 30")
        await _wait_for(lambda: len(host.mac.commands) == 1)
        proc.close()
        await _wait_for(lambda: host.mac.commands[0].exit_status is not None)
    assert host.mac.commands[0].exit_status == HANGUP_STATUS


async def test_shell_without_command_runs_stdin_as_script(fleet: Fleet, host: SimHost) -> None:
    async with connect(fleet, host) as conn:
        proc = await conn.create_process()  # a shell request, no command
        proc.stdin.write("echo from script\nexit 4\n")
        proc.stdin.write_eof()
        result = await asyncio.wait_for(proc.wait(), 5)
    assert result.stdout == "from script\n"
    assert result.exit_status == 4
    assert [c.command for c in host.mac.commands] == [SHELL_LOG_TEXT]


async def test_pty_is_refused(fleet: Fleet, host: SimHost) -> None:
    async with connect(fleet, host) as conn:
        with pytest.raises(asyncssh.ChannelOpenError, match="PTY"):
            await conn.create_process("echo hi", term_type="xterm")


async def test_internal_error_gives_status_70(tmp_path) -> None:
    async def broken(mac, command, stdin, stdout, stderr) -> int:
        raise RuntimeError("boom")

    from .conftest import small_spec

    async with Fleet.start(small_spec(1), tmp_path / "s", exec_handler=broken) as fleet:
        host = fleet.hosts["mac-01"]
        async with connect(fleet, host) as conn:
            result = await conn.run("anything", check=False)
    assert result.exit_status == 70
    assert result.stderr == "macsim: internal error running the command\n"


async def test_client_may_pick_aes128_gcm(fleet: Fleet, host: SimHost) -> None:
    async with connect(fleet, host, encryption_algs=["aes128-gcm@openssh.com"]) as conn:
        assert conn.get_extra_info("send_cipher") == "aes128-gcm@openssh.com"
        assert (await conn.run("echo ok", check=False)).stdout == "ok\n"


async def test_compression_is_not_offered(fleet: Fleet, host: SimHost) -> None:
    with pytest.raises(asyncssh.KeyExchangeFailed, match="compression"):
        async with connect(fleet, host, compression_algs=["zlib@openssh.com"]):
            pass


# ---- auth -------------------------------------------------------------------------------------------
async def test_wrong_user_is_rejected(fleet: Fleet, host: SimHost) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        async with connect(fleet, host, username="root"):
            pass


async def test_unknown_client_key_is_rejected(fleet: Fleet, host: SimHost) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        async with connect(fleet, host, client_keys=[stranger]):
            pass


async def test_password_auth_when_the_spec_sets_one(fleet: Fleet) -> None:
    h2 = fleet.hosts["mac-02"]
    async with connect(fleet, h2, client_keys=None, password="hunter2-test") as conn:
        assert (await conn.run("whoami", check=False)).stdout == "ops\n"
    with pytest.raises(asyncssh.PermissionDenied):
        async with connect(fleet, h2, client_keys=None, password="wrong"):
            pass


async def test_no_password_auth_without_a_spec_password(fleet: Fleet, host: SimHost) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        async with connect(fleet, host, client_keys=None, password=""):
            pass


async def test_host_key_rotation_breaks_strict_checking(fleet: Fleet, host: SimHost) -> None:
    pinned = host.connect_kwargs()["known_hosts"]
    old_line = host.host_key_public
    new_line = fleet.rotate_host_key("mac-01")
    assert new_line != old_line and new_line.startswith("ssh-ed25519 ")
    assert (host.state_dir / "ssh_host_ed25519_key").stat().st_mode & 0o777 == 0o600
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        async with connect(fleet, host, known_hosts=pinned):
            pass
    async with connect(fleet, host) as conn:  # the new key verifies
        assert (await conn.run("hostname", check=False)).stdout == "mac-01.local\n"
