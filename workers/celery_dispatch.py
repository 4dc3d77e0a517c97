"""Driving a run through Celery: waves opened from the database, device jobs published, progress followed.

Waves advance from SQL, never from chord counters (rule 4): `advance(run_id)` reads the run's job counts
per wave and status, and
- publishes the lowest wave that still has pending (or interrupted) jobs: ONE conditional UPDATE moves them
  to `queued` and returns the ids it moved, so two advances racing (two jobs ending at once, a controller
  and a worker) never publish a job twice; only then is one `macfleet.device_job(run_id, job_id, device)`
  message sent per job;
- waits while that wave has queued or running jobs;
- halts the run when the failure threshold is crossed, once nothing is in flight (the crossing wave
  finishes, as with the local driver), and finishes the run when every job is done — the gate and the
  records are `orchestrator.runs`', as with the local driver.
Every device job calls `advance` when it ends; the controller calls it once to start (`dispatch`) and, while
it follows a run, every few seconds as a watchdog that also re-publishes RUNNING jobs whose lease expired
(their worker died; Redis would redeliver them too, after the visibility timeout). Duplicates are harmless:
the lease lets one execution at a time work on a device and a finished job's task returns at once.

If the broker cannot be reached while publishing, the jobs not sent go back to pending and the run halts
with that reason recorded (resume with `orchestrate runs resume`). A controller killed between marking
jobs queued and sending them leaves queued jobs without a message: `runs resume` puts them back to pending.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from orchestrator import runs
from orchestrator.redact import LOG_REDACTOR
from orchestrator.state.models import Device, DeviceJob, JobStatus, Run, RunStatus, StepRun, utcnow
from workers.celery_config import ADVANCE_TASK, DEVICE_TASK, MacfleetCelery
from workers.events import JobFinished, JobStarted, RunEvent, StepFinished
from workers.runner.device import CONNECT_STEP, FACTS_STEP
from workers.runner.inputs import workflow_for

log = logging.getLogger(__name__)

PUBLISH_BATCH = 500  # device jobs per Redis pipeline when publishing a wave


class PublishError(RuntimeError):
    """The broker could not be reached while publishing device jobs (the run was halted, reason recorded)."""


def advance(
    engine: Engine,
    app: MacfleetCelery,
    run_id: str,
    *,
    reap_after: float | None = None,
    finished_wave: int | None = None,
) -> str:
    """Take the run one step further from what the database says; returns what was done ("published:N",
    "wait", "pause", "halted", "finished", "idle"). Safe to call any number of times, from anywhere.

    reap_after: also re-publish RUNNING jobs whose lease expired more than this many seconds ago.
    finished_wave: the wave of the device job that just ended (its own call): while that wave still has a job
    in flight and none to publish, the answer is "wait" whatever the counts say, so it is found in two index
    seeks instead of counting the whole run (which every finished job did: O(N) each, O(N^2) a run)."""
    if finished_wave is not None and reap_after is None and _wave_busy(engine, run_id, finished_wave):
        return "wait"
    with Session(engine) as s:
        run = s.get(Run, run_id)
        if run is None or runs.settled(run):
            return "idle"
        counts = runs.wave_counts(s, run_id)
        in_flight = sum(c[st] for c in counts.values() for st in JobStatus.in_flight())
        if run.status == RunStatus.HALTED.value:  # by hand (`runs halt`): publish nothing more
            if in_flight:
                return "wait"
            runs.finish_run(s, run_id, halted_by=run.halt_reason or "halted by hand")
            s.commit()
            return "halted"
        if run.status != RunStatus.RUNNING.value:
            return "idle"
        params = json.loads(run.params_json)
    if reap_after is not None:
        reap(engine, app, run_id, reap_after)
    with Session(engine) as s:
        gate = runs.gate(s, run_id, counts)
    if gate.action == "halt":
        if in_flight:
            return "wait"  # the wave that crossed the threshold finishes first, as with the local driver
        _finish(engine, run_id, halt=gate.reason)
        return "halted"
    live = JobStatus.unfinished()
    waves = sorted(w for w, c in counts.items() if any(c[st] for st in live))
    if not waves:
        _finish(engine, run_id)
        return "finished"
    wave = waves[0]
    if not any(counts[wave][st] for st in JobStatus.openable()):
        return "wait"
    pause = float(params.get("pause") or 0)
    if pause and any(w < wave for w in counts):
        with Session(engine) as s:
            last = s.exec(
                select(func.max(DeviceJob.ended_at)).where(DeviceJob.run_id == run_id, DeviceJob.wave < wave)
            ).one()
        if last is not None:
            remaining = (last + timedelta(seconds=pause) - utcnow()).total_seconds()
            if remaining > 0:
                app.send_task(ADVANCE_TASK, args=(run_id,), countdown=remaining)
                return "pause"
    return f"published:{publish_wave(engine, app, run_id, wave)}"


def _wave_busy(engine: Engine, run_id: str, wave: int) -> bool:
    """The run is running, and the wave has a job in flight and none waiting to be published: every branch
    of `advance` then waits (a halt, the gate's or by hand, waits for the jobs in flight; the wave is not
    done; nothing to publish). Lower waves are done: only `runs resume`/`retry` reopen jobs, and they advance
    with the full count. Two seeks on the devicejob (run_id, wave, status) index."""
    with Session(engine) as s:
        run = s.get(Run, run_id)
        if run is None or run.status != RunStatus.RUNNING.value:
            return False

        def any_in(statuses: tuple[str, ...]) -> bool:
            q = select(DeviceJob.wave).where(DeviceJob.run_id == run_id, DeviceJob.wave == wave,
                                             col(DeviceJob.status).in_(statuses)).limit(1)  # fmt: skip
            return s.exec(q).first() is not None

        return any_in(JobStatus.in_flight()) and not any_in(JobStatus.openable())


def publish_wave(engine: Engine, app: MacfleetCelery, run_id: str, wave: int) -> int:
    """Move the wave's pending/interrupted jobs to queued (one conditional UPDATE) and send one device job
    message each. Returns how many were published. Raises PublishError (the run is halted) when the
    broker cannot be reached."""
    with Session(engine) as s:
        moved = s.connection().execute(
            update(DeviceJob)
            .where(and_(col(DeviceJob.run_id) == run_id, col(DeviceJob.wave) == wave,
                        col(DeviceJob.status).in_(JobStatus.openable())))
            .values(status=JobStatus.QUEUED.value, lease_owner=None, lease_expires_at=_queue_deadline(app))
            .returning(col(DeviceJob.id), col(DeviceJob.device_id))
        ).all()  # fmt: skip
        s.commit()
    return _send(engine, app, run_id, [(j, d) for j, d in moved])


def _queue_deadline(app: MacfleetCelery) -> datetime:
    """How long a queued job may wait for a worker before the reaper assumes its message was lost (a broker
    that lost data, a controller killed between marking and sending) and publishes it again: the broker's
    visibility timeout, after which Redis itself would redeliver an unacknowledged message. A duplicate is
    harmless: the lease claim lets one execution through and a finished job's task returns at once."""
    options = app.conf.broker_transport_options or {}
    return utcnow() + timedelta(seconds=float(options.get("visibility_timeout", 3600)))


def reap(engine: Engine, app: MacfleetCelery, run_id: str, grace: float) -> int:
    """Re-publish the run's RUNNING jobs whose lease expired more than grace seconds ago (their worker died
    without a word), and QUEUED jobs whose queue deadline passed (their message was lost). The conditional
    UPDATE makes a second reaper skip them."""
    cutoff = utcnow() - timedelta(seconds=grace)
    with Session(engine) as s:
        moved = s.connection().execute(
            update(DeviceJob)
            .where(and_(col(DeviceJob.run_id) == run_id, col(DeviceJob.status).in_(JobStatus.in_flight()),
                        col(DeviceJob.lease_expires_at) < cutoff))
            .values(status=JobStatus.QUEUED.value, lease_owner=None, lease_expires_at=_queue_deadline(app))
            .returning(col(DeviceJob.id), col(DeviceJob.device_id))
        ).all()  # fmt: skip
        s.commit()
    if moved:
        log.warning(
            "run %s: re-publishing %d job(s) whose worker stopped renewing its lease", run_id, len(moved)
        )
    return _send(engine, app, run_id, [(j, d) for j, d in moved])


def _send(engine: Engine, app: MacfleetCelery, run_id: str, jobs: Sequence[tuple[str, str]]) -> int:
    if not jobs:
        return 0
    with Session(engine) as s:
        names = dict(
            s.exec(select(Device.id, Device.name).where(col(Device.id).in_([d for _, d in jobs]))).all()
        )
    sent: list[str] = []
    try:
        with app.producer_or_acquire() as producer:
            for start in range(0, len(jobs), PUBLISH_BATCH):
                chunk = jobs[start : start + PUBLISH_BATCH]
                # kombu buffers the chunk's messages (and their task-sent events) in one Redis pipeline:
                # 2.4x faster than a round trip per message; a chunk is sent only if the block ends well
                with producer.batch(2 * len(chunk) + 8):
                    for job_id, device_id in chunk:
                        app.send_task(DEVICE_TASK, args=(run_id, job_id, names.get(device_id, device_id)),
                                      producer=producer)  # fmt: skip
                sent.extend(j for j, _ in chunk)
    except Exception as e:  # kombu raises OperationalError and redis errors once the retries are spent
        done = set(sent)
        unsent = [j for j, _ in jobs if j not in done]
        why = LOG_REDACTOR.redact(f"{type(e).__name__}: {e}")[:300]
        with Session(engine) as s:
            s.connection().execute(
                update(DeviceJob)
                .where(and_(col(DeviceJob.id).in_(unsent), col(DeviceJob.status) == JobStatus.QUEUED.value))
                .values(status=JobStatus.PENDING.value)
            )
            runs.record_halt(
                s, run_id, f"the broker could not be reached to publish {len(unsent)} device job(s) ({why})"
            )
            s.commit()
        raise PublishError(why) from None
    return len(sent)


def _finish(engine: Engine, run_id: str, *, halt: str | None = None, halted_by: str | None = None) -> None:
    with Session(engine) as s:
        runs.finish_run(s, run_id, halt=halt, halted_by=halted_by)
        s.commit()


def dispatch(engine: Engine, app: MacfleetCelery, run_id: str) -> str:
    """Start (or restart, after `runs resume`) a run on the Celery workers: mark it running, re-publish its
    RUNNING jobs (a dead holder's: their tasks wait the lease out; a live holder's duplicate gives up), and
    open the first wave. Returns what `advance` did. Raises PublishError when the broker is unreachable."""
    with Session(engine) as s:
        runs.start_run(s, run_id, executor="celery")
        stale = s.exec(
            select(DeviceJob.id, DeviceJob.device_id).where(
                DeviceJob.run_id == run_id, DeviceJob.status == JobStatus.RUNNING.value
            )
        ).all()
        s.commit()
    _send(engine, app, run_id, [(j, d) for j, d in stale])
    return advance(engine, app, run_id)


# ------------------------------------------------------------------------------------------ following


@dataclass
class Follower:
    """Turns what the workers write (DeviceJob and StepRun rows) into the run events the live display
    takes, by polling the database: a device's JobStarted, its StepFinished in order, its JobFinished."""

    engine: Engine
    run_id: str
    steps: tuple[str, ...] = ()
    _started: set[str] = field(default_factory=set)
    _finished: dict[str, str] = field(default_factory=dict)
    _seen_steps: set[str] = field(default_factory=set)
    _since: Any = None

    def __post_init__(self) -> None:
        with Session(self.engine) as s:
            run = s.get(Run, self.run_id)
            kind = run.kind if run is not None else ""
        wf = workflow_for(kind)
        self.steps = (CONNECT_STEP, FACTS_STEP, *(st.name for st in wf.steps)) if wf else ()

    def poll(self) -> tuple[list[RunEvent], Run | None]:
        """The events since the last poll, and the run row as it is now."""
        events: list[RunEvent] = []
        with Session(self.engine) as s:
            run = s.get(Run, self.run_id)
            rows = s.exec(
                select(DeviceJob, Device.name).where(DeviceJob.run_id == self.run_id,
                                                     DeviceJob.device_id == Device.id)
            ).all()  # fmt: skip
            jobs = [(j.id, j.status, j.current_step, j.error_type, j.error_message, n) for j, n in rows]
            q = (
                select(StepRun, Device.name)
                .where(StepRun.job_id == DeviceJob.id, DeviceJob.run_id == self.run_id,
                       DeviceJob.device_id == Device.id, col(StepRun.ended_at).is_not(None))
                .order_by(col(StepRun.ended_at))
            )  # fmt: skip
            if self._since is not None:  # a window back: a row committed late with an earlier end is not lost
                q = q.where(col(StepRun.ended_at) > self._since - timedelta(seconds=30))
            steps = s.exec(q).all()
        names = {}
        for job_id, status, _step, _et, _em, name in jobs:
            names[job_id] = name
            if status not in (JobStatus.PENDING.value, JobStatus.QUEUED.value) and name not in self._started:
                self._started.add(name)
                events.append(JobStarted(self.run_id, name, self.steps))
        for rec, name in steps:
            if rec.id in self._seen_steps:
                continue
            self._seen_steps.add(rec.id)
            self._since = max(self._since, rec.ended_at) if self._since is not None else rec.ended_at
            if name not in self._started:
                self._started.add(name)
                events.append(JobStarted(self.run_id, name, self.steps))
            events.append(
                StepFinished(self.run_id, name, rec.step, rec.status, rec.noop_reason, rec.error_type, None,
                             rec.duration_ms or 0)
            )  # fmt: skip
        for _job_id, status, step, etype, emsg, name in jobs:
            if status in JobStatus.done() and self._finished.get(name) != status:
                self._finished[name] = status
                failed = status == JobStatus.FAILED.value
                events.append(JobFinished(self.run_id, name, status, step if failed else None, etype, emsg))
        return events, run


async def follow(
    engine: Engine,
    app: MacfleetCelery,
    run_id: str,
    *,
    on_event: Callable[[RunEvent], None] | None = None,
    stop: asyncio.Event | None = None,
    every: float = 0.5,
    watchdog: float = 5.0,
    reap_after: float | None = None,
) -> Run | None:
    """Follow the run from the database until it is finished or halted (or stop is set), feeding on_event.
    Every `watchdog` seconds it calls `advance` (with the reaper: RUNNING jobs whose lease expired more than
    reap_after seconds ago are re-published), so a run whose last worker died still moves. Returns the run
    row at the end."""
    follower = Follower(engine, run_id)
    stop = stop or asyncio.Event()
    last_watch = time.monotonic()
    run: Run | None = None
    while True:
        events, run = await asyncio.to_thread(follower.poll)
        for ev in events:
            if on_event is not None:
                on_event(ev)
        if run is None or runs.settled(run) or stop.is_set():
            return run
        if time.monotonic() - last_watch >= watchdog:
            last_watch = time.monotonic()
            try:
                await asyncio.to_thread(advance, engine, app, run_id, reap_after=reap_after)
            except PublishError:
                pass  # recorded on the run; the next poll sees it halted
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            pass
