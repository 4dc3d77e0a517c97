"""Bytes in flight during uploads (workers.ssh.inflight) against a real OpenSSH sshd: one upload never has
more than its window outstanding, all uploads together never more than the process budget, and a dropped
connection gives every byte of the budget back."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests.workers.sshd import Sshd
from workers.ssh import Connection, ConnectionLost, HostKeyPolicy, SshAuth, SshTarget, Timeouts, connect
from workers.ssh.inflight import ByteBudget, UploadLimits, process_budget, set_upload_limits
from workers.ssh.upload import UploadItem, upload, upload_many

KIB = 1024


@dataclass
class Outstanding:
    """What the SFTP client has sent and the server not yet answered, per open file and in all."""

    per_file: dict[int, int] = field(default_factory=dict)
    total: int = 0
    max_per_file: int = 0
    max_total: int = 0
    max_request: int = 0
    files_at_once: int = 0  # most files with a request outstanding at the same moment

    def start(self, fh: object, n: int) -> None:
        self.per_file[id(fh)] = self.per_file.get(id(fh), 0) + n
        self.total += n
        self.max_per_file = max(self.max_per_file, self.per_file[id(fh)])
        self.max_total = max(self.max_total, self.total)
        self.max_request = max(self.max_request, n)
        self.files_at_once = max(self.files_at_once, sum(1 for v in self.per_file.values() if v))

    def end(self, fh: object, n: int) -> None:
        self.per_file[id(fh)] -= n
        self.total -= n


@pytest.fixture
def outstanding(monkeypatch: pytest.MonkeyPatch) -> Outstanding:
    """Observe every SFTP write request the client makes (the real write still goes to sshd)."""
    seen = Outstanding()
    real_write = asyncssh.SFTPClientFile.write

    async def write(self: asyncssh.SFTPClientFile, data: Any, offset: int | None = None) -> int:
        seen.start(self, len(data))
        try:
            return await real_write(self, data, offset)
        finally:
            seen.end(self, len(data))

    monkeypatch.setattr(asyncssh.SFTPClientFile, "write", write)
    return seen


@pytest.fixture
def limits() -> Iterator[None]:
    """Small limits so that a few MiB exercise them; the defaults again afterwards."""
    set_upload_limits(UploadLimits(block=64 * KIB, window=256 * KIB, budget=512 * KIB))
    yield
    set_upload_limits(UploadLimits())


@pytest.mark.usefixtures("limits")
async def test_one_upload_never_has_more_than_its_window_in_flight(
    conn: Connection, outstanding: Outstanding, tmp_path: Path
) -> None:
    local = tmp_path / "client.dmg"
    local.write_bytes(os.urandom(5 * 1024 * KIB + 17))
    seen: list[int] = []
    result = await upload(conn, local, str(tmp_path / "remote"), "client.dmg", progress=lambda d, _t: seen.append(d))
    assert (tmp_path / "remote" / "client.dmg").read_bytes() == local.read_bytes()
    assert result.bytes == local.stat().st_size and seen[-1] == result.bytes
    assert outstanding.max_request == 64 * KIB  # one block per request
    # pipelined up to the window, never past it (the whole 5 MiB file would be in flight without it)
    assert outstanding.max_per_file == 256 * KIB
    assert process_budget().used == 0


async def test_empty_and_in_memory_sources_stream_too(
    conn: Connection, outstanding: Outstanding, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    seen: list[tuple[int, int]] = []
    await upload(conn, empty, str(tmp_path / "r"), "empty", progress=lambda d, t: seen.append((d, t)))
    assert (tmp_path / "r" / "empty").read_bytes() == b"" and seen == [(0, 0)]
    data = os.urandom(3 * 1024 * KIB + 5)  # bytes (a PFX, a script) go the same bounded way
    await upload(conn, data, str(tmp_path / "r"), "blob")
    assert (tmp_path / "r" / "blob").read_bytes() == data
    assert outstanding.max_request <= UploadLimits().block
    assert outstanding.max_per_file <= UploadLimits().window


@pytest.mark.usefixtures("limits")
async def test_the_process_budget_holds_across_concurrent_uploads(
    target: SshTarget, pinned: HostKeyPolicy, auth: SshAuth, timeouts: Timeouts, outstanding: Outstanding,
    tmp_path: Path,
) -> None:
    files = []
    for k in range(6):
        files.append(tmp_path / f"pkg-{k}")
        files[-1].write_bytes(os.urandom(2 * 1024 * KIB + k))
    conns = [await connect(target, pinned, auth, timeouts) for _ in range(3)]
    try:
        # three connections, two files each on one SFTP session: six uploads at once, 12 MiB in all
        await asyncio.gather(*(
            upload_many(c, [UploadItem(files[2 * i], files[2 * i].name), UploadItem(files[2 * i + 1],
                                                                                    files[2 * i + 1].name)],
                        str(tmp_path / f"remote-{i}"))
            for i, c in enumerate(conns)
        ))
    finally:
        for c in conns:
            await c.close()
    for i, f in enumerate(files):
        assert (tmp_path / f"remote-{i // 2}" / f.name).read_bytes() == f.read_bytes()
    assert outstanding.max_total <= 512 * KIB
    assert outstanding.files_at_once >= 2  # the budget was shared, not a queue of one upload at a time
    assert outstanding.max_per_file <= 256 * KIB
    assert process_budget().used == 0


async def test_uploads_waiting_for_the_budget_hold_no_block(
    target: SshTarget, pinned: HostKeyPolicy, auth: SshAuth, timeouts: Timeouts, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The blocks read from files and alive at any moment (traced by tracemalloc) fit in the budget: an
    upload queued for the budget must not keep its last block (one block per waiting upload was 183 MiB
    at 200 Macs)."""
    import tracemalloc

    import workers.ssh.inflight as inflight

    set_upload_limits(UploadLimits(block=64 * KIB, window=128 * KIB, budget=128 * KIB))
    live: list[int] = []
    real_write = asyncssh.SFTPClientFile.write
    calls = 0

    async def write(self: asyncssh.SFTPClientFile, data: Any, offset: int | None = None) -> int:
        nonlocal calls
        calls += 1
        if calls % 4 == 0:
            snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, inflight.__file__)])
            live.append(sum(stat.size for stat in snap.statistics("filename")))
        return await real_write(self, data, offset)

    monkeypatch.setattr(asyncssh.SFTPClientFile, "write", write)
    files = []
    for k in range(8):
        files.append(tmp_path / f"f-{k}")
        files[-1].write_bytes(os.urandom(1024 * KIB))
    conn = await connect(target, pinned, auth, timeouts)
    tracemalloc.start()
    try:
        await upload_many(conn, [UploadItem(f, f.name) for f in files], str(tmp_path / "r"))
    finally:
        tracemalloc.stop()
        await conn.close()
        set_upload_limits(UploadLimits())
    assert all((tmp_path / "r" / f.name).read_bytes() == f.read_bytes() for f in files)
    assert len(live) > 10
    # the budget's two blocks; plus each open file's 8 KiB read buffer and the tasks (about 18 KiB here)
    assert max(live) <= 128 * KIB + 32 * KIB


@pytest.mark.usefixtures("limits")
async def test_a_dropped_connection_gives_the_budget_back(
    sshd: Sshd, target: SshTarget, pinned: HostKeyPolicy, auth: SshAuth, timeouts: Timeouts, tmp_path: Path
) -> None:
    local = tmp_path / "big.dmg"
    local.write_bytes(os.urandom(8 * 1024 * KIB))
    killed: list[int] = []

    def kill_once(done: int, total: int) -> None:
        if not killed and done >= total // 4:
            killed.extend(sshd.kill_sessions())

    conn = await connect(target, pinned, auth, timeouts)
    try:
        with pytest.raises(ConnectionLost):
            await upload(conn, local, str(tmp_path / "r"), "big.dmg", progress=kill_once)
    finally:
        await conn.close()
    assert killed
    assert process_budget().used == 0  # every request's bytes came back, failed or cancelled


async def test_byte_budget_serves_the_oldest_upload_first_and_survives_cancellation() -> None:
    budget = ByteBudget(10)
    await budget.acquire(8)
    order: list[str] = []

    async def take(name: str, n: int, priority: int) -> None:
        await budget.acquire(n, priority)
        order.append(name)

    big = asyncio.ensure_future(take("big", 6, priority=1))
    small = asyncio.ensure_future(take("small", 1, priority=2))
    await asyncio.sleep(0)
    assert order == [] and budget.free == 2  # small fits, but waits behind the older big
    old = asyncio.ensure_future(take("old", 2, priority=0))  # an older upload comes back for more
    await asyncio.sleep(0)
    assert order == [] and budget.free == 2  # it queues too (no overtaking waiters), at the head
    budget.release(1)
    await asyncio.sleep(0)
    assert order == ["old"] and budget.free == 1  # served before big and small, which came first
    big.cancel()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert order == ["old", "small"] and budget.free == 0  # the cancelled head no longer blocks
    assert small.done() and big.cancelled() and old.done()
    budget.release(7)
    budget.release(2)
    budget.release(1)
    assert budget.free == 10 and budget.used == 0
    with pytest.raises(ValueError, match="cannot take 11 bytes"):
        await budget.acquire(11)
    with pytest.raises(ValueError, match=r"block \(2\) <= window \(1\)"):
        UploadLimits(block=2, window=1, budget=4)


def test_the_ssh_settings_carry_the_upload_limits() -> None:
    from pydantic import ValidationError

    from orchestrator.config import Settings, SshSettings
    from workers.runner.job import upload_limits_of

    assert upload_limits_of(Settings()) == UploadLimits()  # one set of defaults
    custom = Settings(ssh=SshSettings(upload_block_size=256 * KIB, upload_window=KIB * KIB, upload_budget=8 * KIB * KIB))
    assert upload_limits_of(custom) == UploadLimits(256 * KIB, KIB * KIB, 8 * KIB * KIB)
    with pytest.raises(ValidationError, match="upload_block_size <= upload_window <= upload_budget"):
        SshSettings(upload_window=2 * KIB * KIB * KIB)


async def test_setting_the_same_limits_again_keeps_the_process_budget() -> None:
    # a Celery worker builds one JobExecutor (which sets the [ssh] limits) per device job: jobs running at
    # the same time must still draw on one budget
    set_upload_limits(UploadLimits(block=64 * KIB, window=128 * KIB, budget=256 * KIB))
    try:
        first = process_budget()
        set_upload_limits(UploadLimits(block=64 * KIB, window=128 * KIB, budget=256 * KIB))
        assert process_budget() is first
        set_upload_limits(UploadLimits(block=64 * KIB, window=128 * KIB, budget=512 * KIB))
        assert process_budget() is not first and process_budget().free == 512 * KIB
    finally:
        set_upload_limits(UploadLimits())
