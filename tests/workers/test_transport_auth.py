"""Authentication methods other than a key file: ssh-agent (a real OpenSSH agent) and password (macsim)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from macsim.fleet import Fleet
from macsim.spec import FleetSpec, HostSpec
from tests.workers.sshd import Sshd
from workers.ssh import AuthFailed, HostKeyPolicy, SshAuth, SshTarget, Timeouts, connect

PASSWORD = "canary-ssh-pw-1618"


@pytest.fixture
def agent(sshd: Sshd, tmp_path: Path) -> Iterator[str]:
    """A real ssh-agent in the foreground (-D) holding the sshd fixture's client key; ended by PID."""
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("ssh-agent did not start")
            time.sleep(0.02)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(sshd.client_key)], env=env, check=True, capture_output=True)
        yield str(sock)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


async def test_agent_auth(
    agent: str, target: SshTarget, pinned: HostKeyPolicy, timeouts: Timeouts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", agent)
    async with await connect(target, pinned, SshAuth(agent=True), timeouts) as conn:
        assert (await conn.run(["true"])).ok


async def test_agent_path_given_explicitly(
    agent: str, target: SshTarget, pinned: HostKeyPolicy, timeouts: Timeouts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    async with await connect(target, pinned, SshAuth(agent=True, agent_path=agent), timeouts) as conn:
        assert (await conn.run(["true"])).ok


async def test_agent_is_not_used_unless_asked(
    agent: str,
    sshd: Sshd,
    target: SshTarget,
    pinned: HostKeyPolicy,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # the agent holds a valid key, but only the (unknown) key file is allowed: auth must fail
    import asyncssh

    monkeypatch.setenv("SSH_AUTH_SOCK", agent)
    stranger = tmp_path / "stranger"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    with pytest.raises(AuthFailed):
        await connect(target, pinned, SshAuth(key_files=(stranger,)))


async def test_missing_agent_is_auth_failed(
    target: SshTarget, pinned: HostKeyPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(AuthFailed, match="ssh-agent"):
        await connect(target, pinned, SshAuth(agent=True))


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    async with Fleet.start(FleetSpec(hosts=[HostSpec(name="pwmac", password=PASSWORD)])) as running:
        yield running


async def test_password_auth(fleet: Fleet) -> None:
    host = fleet.hosts["pwmac"]
    target = SshTarget(host.address, host.spec.user, host.port)
    async with await connect(
        target, HostKeyPolicy.pin([host.host_key_public]), SshAuth(password=PASSWORD.encode())
    ) as conn:
        assert (await conn.run(["whoami"])).stdout == b"admin\n"
    with pytest.raises(AuthFailed) as caught:
        await connect(target, HostKeyPolicy.pin([host.host_key_public]), SshAuth(password=b"not-it"))
    assert "not-it" not in str(caught.value)
    assert PASSWORD not in "\n".join(rec.command for rec in host.mac.commands)
