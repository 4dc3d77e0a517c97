"""Bounded failure: a silent peer is dropped by keepalives; the open-file limit is raised at startup."""

from __future__ import annotations

import os
import resource
import signal
import time
from collections.abc import Iterator

import pytest

from tests.workers.sshd import Sshd
from workers.limits import raise_nofile_limit
from workers.ssh import ConnectionLost, HostKeyPolicy, SshAuth, SshTarget, Timeouts, connect


@pytest.fixture
def restore_nofile() -> Iterator[None]:
    saved = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, saved)


def test_raise_nofile_limit_goes_up_to_the_hard_limit(restore_nofile: None) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
    got = raise_nofile_limit(10**9)
    assert got == hard == resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_raise_nofile_limit_stops_at_the_target_and_never_lowers(restore_nofile: None) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1024:
        pytest.fail(f"hard open-file limit {hard} is too low for the controller (raise it: ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    assert raise_nofile_limit(512) == 512
    assert raise_nofile_limit(300) == 512  # already above: unchanged
    with pytest.raises(ValueError, match="must be positive"):
        raise_nofile_limit(0)


async def test_silent_peer_is_dropped_by_keepalives_in_bounded_time(
    sshd: Sshd, target: SshTarget, pinned: HostKeyPolicy, auth: SshAuth
) -> None:
    timeouts = Timeouts(connect=5, login=10, command=30, keepalive_interval=0.5, keepalive_count_max=2)
    conn = await connect(target, pinned, auth, timeouts)
    frozen = sshd.descendants()
    assert frozen, "no per-connection sshd process found"
    try:
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)  # the peer goes silent: TCP stays up, nothing answers
        started = time.monotonic()
        with pytest.raises(ConnectionLost) as caught:
            await conn.run(["sleep", "20"])
        waited = time.monotonic() - started
        assert waited < 5, f"a silent peer took {waited:.1f} s to be dropped"
        assert f"127.0.0.1:{sshd.port}" in str(caught.value)
        assert conn.is_closed
    finally:
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGKILL)
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        await conn.close()
