"""Bytes in flight during uploads: a window per upload, a budget for the whole process, and the pipelined
SFTP writer that keeps to both.

asyncssh's `put` lets up to 16-128 write requests of the server's largest size (macsim: 4 MiB) be
outstanding per file, so a whole DMG sat in the controller's memory for every Mac in flight (about 80 MiB
per Mac at 30 MB, with the SSH layer's copies). Here each upload reads the file one block at a time and has
at most `window` bytes written but not yet acknowledged, and all uploads of the process together at most
`budget` bytes: peak memory no longer grows with the image size nor, past budget / window, with the
concurrency. The budget belongs to the running event loop (one per controller or worker process) and
serves the oldest upload first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh

MIB = 1024 * 1024


@dataclass(frozen=True)
class UploadLimits:
    """`block`: the largest write request (the server's own limit applies when smaller: OpenSSH 9.2's
    sftp-server advertises 261120 bytes in its limits@openssh.com reply, measured here; macsim 4 MiB);
    `window`: bytes one upload may have in flight; `budget`: bytes all uploads of the process may have in
    flight together. block <= window <= budget."""

    # Measured (the bench's bare push, 50 Macs x 8 MB at concurrency 50 on macsim, loaded 2-core machine):
    # 1/4/32 MiB peaked at 159-164 MiB RSS (76 before) for 2.7-3.2 ms of controller CPU per MiB; 4/8/64
    # at 285-292 MiB, 3.1-3.3 ms; 4/8/32 at 193 MiB, 3.0 ms; asyncssh's put at 1063 MiB, 4.0 ms. Each
    # request is copied on its way into the channel (String, join, the channel's bytearray), so live
    # upload bytes are a few times the budget. 256 KiB requests: 3.1 ms/MiB against 2.7 (one stream, once).
    block: int = 1 * MIB
    window: int = 4 * MIB
    budget: int = 32 * MIB

    def __post_init__(self) -> None:
        if not 0 < self.block <= self.window <= self.budget:
            raise ValueError(
                f"upload limits need 0 < block ({self.block}) <= window ({self.window}) <= budget "
                f"({self.budget}) bytes: raise the window or budget, or lower the block size"
            )


class ByteBudget:
    """A semaphore counted in bytes that serves waiters by priority (lowest first), then arrival; the head
    is never overtaken, so a large request is not starved by small ones. `acquire(n, priority)` waits
    until n bytes are free; `release(n)` gives them back."""

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError("a byte budget must be positive")
        self.limit = limit
        self.free = limit
        self._waiters: list[tuple[int, int, int, asyncio.Future[None]]] = []  # heap: priority, seq, n
        self._seq = itertools.count()

    @property
    def used(self) -> int:
        return self.limit - self.free

    async def acquire(self, n: int, priority: int = 0) -> None:
        if not 0 < n <= self.limit:
            raise ValueError(f"cannot take {n} bytes from a budget of {self.limit}")
        if not self._waiters and n <= self.free:
            self.free -= n
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), n, fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(n)  # granted in the same instant it was cancelled: give it back
            else:
                self._grant()  # a cancelled head may have blocked requests behind it
            raise

    def release(self, n: int) -> None:
        self.free += n
        if self.free > self.limit:
            raise RuntimeError("byte budget released more than it lent")
        self._grant()

    def _grant(self) -> None:
        while self._waiters:
            _priority, _seq, n, fut = self._waiters[0]
            if fut.cancelled():
                heapq.heappop(self._waiters)
                continue
            if n > self.free:
                return
            heapq.heappop(self._waiters)
            self.free -= n
            fut.set_result(None)


_limits = UploadLimits()
_tickets = itertools.count()  # upload start order: their priority for the budget
_budgets: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ByteBudget] = weakref.WeakKeyDictionary()


def set_upload_limits(limits: UploadLimits) -> None:
    """Use `limits` for the uploads started from now on (the controller and each worker call this with the
    `[ssh]` settings). Uploads already running keep the budget they took. The same limits again keep the
    budget in use: every job executor of a Celery worker sets them, and its concurrent jobs must share one."""
    global _limits
    if limits == _limits:
        return
    _limits = limits
    _budgets.clear()


def process_budget() -> ByteBudget:
    """The budget of the running event loop (created on first use with the current limits)."""
    loop = asyncio.get_running_loop()
    budget = _budgets.get(loop)
    if budget is None:
        budget = _budgets[loop] = ByteBudget(_limits.budget)
    return budget


async def write_pipelined(
    fh: asyncssh.SFTPClientFile,
    source: Path | bytes,
    size: int,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write `size` bytes of `source` (a local file, read one block at a time, or bytes) to the open remote
    file at offset 0 as parallel write requests, within the window and the process budget.

    Raises what the writes raise (once the other requests ended), OSError when the local file is
    unreadable or shorter than `size`."""
    limits = _limits
    budget = process_budget()
    # The oldest upload gets the next free bytes: uploads then finish one after another, each Mac going on
    # to its install while others still receive, instead of all finishing together at the end.
    ticket = next(_tickets)
    block = min(limits.block, fh.write_len or limits.block)
    pending: set[asyncio.Task[int]] = set()
    in_flight = 0
    done_bytes = 0

    async def write(data: bytes, offset: int) -> int:
        await fh.write(data, offset)
        return len(data)

    def reap(finished: set[asyncio.Task[int]]) -> None:
        nonlocal in_flight, done_bytes
        errors = [exc for task in finished if (exc := task.exception()) is not None]  # retrieve all
        if errors:
            raise errors[0]
        for task in finished:
            in_flight -= task.result()
            done_bytes += task.result()
        if progress is not None:
            progress(done_bytes, size)

    with contextlib.ExitStack() as stack:
        local = stack.enter_context(source.open("rb")) if isinstance(source, Path) else None
        memory = source if isinstance(source, bytes) else b""
        offset = 0
        try:
            while offset < size:
                n = min(block, size - offset)
                while pending and in_flight + n > limits.window:
                    finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    reap(finished)
                await budget.acquire(n, ticket)
                try:
                    data = local.read(n) if local is not None else memory[offset:offset + n]
                    if len(data) != n:
                        raise OSError(f"{str(source)!r} is shorter than the {size} bytes it held when "
                                      "hashed: it changed during the upload; retry once it is complete")
                except BaseException:
                    budget.release(n)
                    raise
                task = asyncio.ensure_future(write(data, offset))
                # only the request may hold the block: a name left bound here kept one block per upload
                # alive while it waited for the budget (measured: 183 MiB at 200 uploads for a 32 MiB budget)
                del data
                # released when the request ends in any way, cancelled before it ran included
                task.add_done_callback(functools.partial(_release, budget, n))
                pending.add(task)
                in_flight += n
                offset += n
            while pending:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                reap(finished)
        except asyncio.CancelledError:
            for task in pending:
                task.cancel()
            raise
        finally:
            # After a failed write the others end by themselves (at once when the link dropped): waiting
            # for them, not cancelling, lets asyncssh collect its own request tasks.
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
    if size == 0 and progress is not None:
        progress(0, 0)


def _release(budget: ByteBudget, n: int, _task: asyncio.Task[int]) -> None:
    budget.release(n)
