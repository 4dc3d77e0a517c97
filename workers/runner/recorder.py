"""Writing what happens to the database, as it happens, without stalling the event loop.

Every step start and end, job change and device refresh goes on a queue; one writer thread commits what
has queued every `interval` seconds in ONE transaction (a step that starts and ends within the same batch
becomes a single insert). A thousand devices produce tens of thousands of records: one commit each would
block the loop for seconds on SQLite. `flush()` waits until everything queued so far is committed —
the runner calls it at the points where durability matters (before a mutating exec, at the end of a job).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import PydanticUndefined
from sqlalchemy import bindparam, insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from orchestrator.state.models import AuditEvent, Device, DeviceJob, StepRun, new_id, utcnow

log = logging.getLogger(__name__)


@dataclass
class _Insert:
    model: type[Any]
    id: str
    values: dict[str, Any]


@dataclass
class _Update:
    model: type[Any]
    id: str
    values: dict[str, Any]


@dataclass
class _Flush:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


@dataclass
class _Call:
    """A write of its own (a lease's release), made after the batch's rows, in the same transaction."""

    write: Callable[[Session], None]


@dataclass
class _Batch:
    inserts: dict[tuple[type[Any], str], dict[str, Any]] = field(default_factory=dict)
    updates: dict[tuple[type[Any], str], dict[str, Any]] = field(default_factory=dict)
    calls: list[_Call] = field(default_factory=list)
    flushes: list[_Flush] = field(default_factory=list)

    def add(self, op: object) -> None:
        if isinstance(op, _Insert):
            self.inserts[(op.model, op.id)] = op.values
        elif isinstance(op, _Update):
            if (op.model, op.id) in self.inserts:
                self.inserts[(op.model, op.id)].update(op.values)  # inserted and updated in one batch
            else:
                self.updates.setdefault((op.model, op.id), {}).update(op.values)
        elif isinstance(op, _Call):
            self.calls.append(op)
        elif isinstance(op, _Flush):
            self.flushes.append(op)

    def empty(self) -> bool:
        return not (self.inserts or self.updates or self.calls)


class Recorder:
    """The write side of a run. Thread-safe; call `start()` once and `close()` at the end."""

    def __init__(self, engine: Engine, interval: float = 0.05) -> None:
        self.engine = engine
        self.interval = interval
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: BaseException | None = None  # the last commit failure, surfaced by flush()
        self.commits = 0

    def start(self) -> Recorder:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="macfleet-recorder", daemon=True)
            self._thread.start()
        return self

    # ------------------------------------------------------------------ queueing (any thread)

    def step_started(self, job_id: str, step: str, attempt: int, commands_json: str = "[]") -> str:
        step_id = new_id()
        self._queue.put(
            _Insert(
                StepRun,
                step_id,
                {
                    "job_id": job_id,
                    "step": step,
                    "attempt": attempt,
                    "status": "running",
                    "started_at": utcnow(),
                    "commands_json": commands_json,
                },
            )
        )
        return step_id

    def step_finished(self, step_id: str, **values: Any) -> None:
        values.setdefault("ended_at", utcnow())
        self._queue.put(_Update(StepRun, step_id, values))

    def job(self, job_id: str, **values: Any) -> None:
        self._queue.put(_Update(DeviceJob, job_id, values))

    def device(self, device_id: str, **values: Any) -> None:
        values.setdefault("updated_at", utcnow())
        self._queue.put(_Update(Device, device_id, values))

    def audit(self, actor: str, action: str, params_json: str) -> None:
        self._queue.put(_Insert(AuditEvent, new_id(), {"actor": actor, "action": action,
                                                       "params_json": params_json, "at": utcnow()}))

    def call(self, write: Callable[[Session], None]) -> None:
        """Run write(session) in the writer's next transaction, after the rows queued before it (it must
        not commit). `flush()` waits for it like for any record."""
        self._queue.put(_Call(write))

    async def flush(self) -> None:
        """Wait until everything queued before this call is committed. Raises the writer's last error."""
        if self._stop.is_set():  # no writer will ever answer: say so rather than wait forever
            raise RuntimeError("the recorder is closed: nothing more can be recorded")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Flush(loop, future))
        if self._thread is None:
            self.start()
        await future
        if self.error is not None:
            error, self.error = self.error, None
            raise RuntimeError(f"recording to the database failed: {error}") from error

    async def close(self) -> None:
        await self.flush()
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)
            self._thread = None

    # ------------------------------------------------------------------ the writer thread

    def _loop(self) -> None:
        while not self._stop.is_set():
            batch = _Batch()
            try:
                batch.add(self._queue.get(timeout=0.2))
            except queue.Empty:
                continue
            deadline = time.monotonic() + self.interval
            while time.monotonic() < deadline and not batch.flushes:
                try:
                    batch.add(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            while True:  # take whatever else is already there
                try:
                    batch.add(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)

    def _commit(self, batch: _Batch) -> None:
        if not batch.empty():
            failure: BaseException | None = None
            for attempt in range(3):
                try:
                    with Session(self.engine) as session:
                        _write(session, batch)
                        session.commit()
                    self.commits += 1
                    failure = None
                    break
                except Exception as exc:  # retried, then surfaced by flush()
                    log.warning("recording to the database failed (attempt %d): %s", attempt + 1, exc)
                    failure = exc
                    time.sleep(0.2 * (attempt + 1))
            if failure is not None:
                self.error = failure
        for f in batch.flushes:
            f.loop.call_soon_threadsafe(_resolve, f.future)


def _write(session: Session, batch: _Batch) -> None:
    """A batch as a few executemany statements on the tables (the ORM's unit of work, one UPDATE per row,
    cost the writer thread ~40 ms of CPU per device, holding the GIL the event loop needs)."""
    by_model: dict[type[Any], list[dict[str, Any]]] = {}
    for (model, row_id), values in batch.inserts.items():
        by_model.setdefault(model, []).append({**_defaults(model), "id": row_id, **values})
    conn = session.connection()
    for model, rows in by_model.items():  # every row of a model has every column: one executemany
        conn.execute(_insert(model), rows)
    same_columns: dict[tuple[type[Any], tuple[str, ...]], list[dict[str, Any]]] = {}
    for (model, row_id), values in batch.updates.items():
        params = {"row_id": row_id, **{f"v_{k}": v for k, v in values.items()}}
        same_columns.setdefault((model, tuple(sorted(values))), []).append(params)
    for (model, names), params_list in same_columns.items():
        conn.execute(_update(model, names), params_list)
    for c in batch.calls:
        c.write(session)


_STATEMENTS: dict[tuple[type[Any], tuple[str, ...] | None], Any] = {}


def _insert(model: type[Any]) -> Any:
    """The model's INSERT, built once: building a statement costs more CPU than executing it."""
    if (model, None) not in _STATEMENTS:
        _STATEMENTS[(model, None)] = insert(model.__table__)
    return _STATEMENTS[(model, None)]


def _update(model: type[Any], names: tuple[str, ...]) -> Any:
    """`UPDATE table SET name = :v_name, ... WHERE id = :row_id`, built once per column set."""
    if (model, names) not in _STATEMENTS:
        table = model.__table__
        stmt = update(table).where(table.c.id == bindparam("row_id"))
        _STATEMENTS[(model, names)] = stmt.values({n: bindparam(f"v_{n}") for n in names})
    return _STATEMENTS[(model, names)]


_DEFAULTS: dict[type[Any], dict[str, Any]] = {}


def _defaults(model: type[Any]) -> dict[str, Any]:
    """The model's plain field defaults, by column name (building a model per row to get them cost the
    writer most of its CPU); fields with a default factory are always given by the caller."""
    if model not in _DEFAULTS:
        fields = model.model_fields.items()
        _DEFAULTS[model] = {name: f.default for name, f in fields if f.default is not PydanticUndefined}
    return _DEFAULTS[model]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class NullRecorder(Recorder):
    """Discards everything (dry runs record nothing)."""

    def __init__(self) -> None:
        super().__init__(engine=None)  # type: ignore[arg-type]

    def step_started(self, job_id: str, step: str, attempt: int, commands_json: str = "[]") -> str:
        return new_id()

    def step_finished(self, step_id: str, **values: Any) -> None:
        pass

    def job(self, job_id: str, **values: Any) -> None:
        pass

    def device(self, device_id: str, **values: Any) -> None:
        pass

    def audit(self, actor: str, action: str, params_json: str) -> None:
        pass

    def call(self, write: Callable[[Session], None]) -> None:
        pass

    async def flush(self) -> None:
        pass

    async def close(self) -> None:
        pass
