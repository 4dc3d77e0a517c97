"""Fixtures of the transport tests: one real OpenSSH sshd per session, and ready-made connect arguments."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.workers.sshd import Sshd, SshdMissing, start_sshd
from workers.ssh import Connection, HostKeyPolicy, SshAuth, SshTarget, Timeouts, connect


@pytest.fixture(scope="session")
def sshd() -> Iterator[Sshd]:
    """A real OpenSSH server on 127.0.0.1 for the whole session, stopped by PID at the end."""
    base = Path(tempfile.mkdtemp(prefix="macfleet-sshd-"))
    try:
        server = start_sshd(base)
    except SshdMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def target(sshd: Sshd) -> SshTarget:
    return SshTarget(host="127.0.0.1", port=sshd.port, username=sshd.user)


@pytest.fixture
def auth(sshd: Sshd) -> SshAuth:
    return SshAuth(key_files=(sshd.client_key,))


@pytest.fixture
def pinned(sshd: Sshd) -> HostKeyPolicy:
    return HostKeyPolicy.pin(list(sshd.host_keys.values()))


@pytest.fixture
def timeouts() -> Timeouts:
    return Timeouts(connect=5, login=10, command=20, keepalive_interval=5, keepalive_count_max=2)


@pytest.fixture
async def conn(
    target: SshTarget, pinned: HostKeyPolicy, auth: SshAuth, timeouts: Timeouts
) -> AsyncIterator[Connection]:
    connection = await connect(target, pinned, auth, timeouts)
    try:
        yield connection
    finally:
        await connection.close()
