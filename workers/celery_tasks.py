"""The Celery tasks: thin edges over the runner (rule 5). Ids in, rows re-read, `DeviceJobWork.run` called.

`macfleet.device_job(run_id, job_id, device)` — one device's part of a run. The arguments are readable in
Flower and carry no secret; the worker re-reads the job, device and run rows, claims the job's lease and
the device's lock (`workers.runner.job.JobExecutor`), runs the workflow, records every step, releases,
then calls `advance` (`workers.celery_dispatch`) so the next wave opens or the run finishes. Its result is a
small JSON dict: status, device, step, error_type and a redacted message. While it runs it reports
`PROGRESS` (device, last step, its status) to the result backend when one is configured.

Delivery is at least once, and every duplicate is harmless:
- the job is finished: the task returns its recorded outcome at once (nothing runs);
- another execution holds the lease: the claim waits out a dead holder's lease (it expires after
  `[deploy] lease_ttl` without renewal) and then takes the job — the runner re-probes the Mac and re-plans,
  so a completed step plans a no-op and runs nothing; a live holder keeps it and this duplicate returns;
- the run was halted or finished: the job goes back from queued to pending (for `runs resume`) untouched.

Concurrency model: the worker runs the threads pool; each task thread hands its coroutine to ONE asyncio
loop per worker process, running in a background thread (`asyncio.run_coroutine_threadsafe`), and only
waits. The loop holds every SSH session of the process (asyncssh), so one process holds hundreds of device
sessions; database work goes to a bounded thread executor (sized below the engine's connection pool).
Time limits: the threads pool does not enforce Celery's, so the task does: at the soft limit the job stops
after the step it is in (always-steps still run), at the hard limit it is cancelled; either way it is
recorded as failed with error type `TimeLimitExceeded`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from celery import Celery, Task
from celery.signals import worker_shutdown
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from orchestrator.config import Settings
from orchestrator.redact import LOG_REDACTOR
from orchestrator.state.db import create_db_engine
from orchestrator.state.models import DeviceJob, JobStatus, Run, RunStatus, new_id, utcnow
from workers.celery_config import ADVANCE_TASK, DEVICE_TASK, MacfleetCelery
from workers.celery_dispatch import PublishError, advance
from workers.events import RunEvent, StepFinished
from workers.limits import raise_nofile_limit
from workers.runner.control import run_settings, watch_halt
from workers.runner.device import RunSettings
from workers.runner.inputs import RunInputs, load_run_inputs
from workers.runner.job import DeviceJobWork, JobExecutor, pin_host_key, record_crash
from workers.runner.recorder import Recorder

log = logging.getLogger(__name__)

DB_THREADS = 12  # under the engine's pool (5 + 10 overflow) with the recorder's connection to spare
MESSAGE_CHARS = 300


@dataclass
class _RunContext:
    """What the tasks of one run share in this worker: its inputs, settings and halt watch."""

    inputs: RunInputs
    run_settings: RunSettings
    stops: set[asyncio.Event] = field(default_factory=set)
    users: int = 0
    halted_by: str | None = None
    watcher: asyncio.Task[None] | None = None

    def halt(self, why: str) -> None:
        """`runs halt` marks the run halted in the database: every device of it here stops after its step."""
        self.halted_by = why
        for ev in list(self.stops):
            ev.set()


class WorkerRuntime:
    """One per worker process: the asyncio loop thread, the engine, the recorder and the run contexts."""

    def __init__(self, settings: Settings) -> None:
        raise_nofile_limit()
        self.settings = settings
        self.engine: Engine = create_db_engine(settings.effective_database_url)
        self.recorder = Recorder(self.engine).start()
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(DB_THREADS, thread_name_prefix="macfleet-db")
        )
        self._thread = threading.Thread(target=self.loop.run_forever, name="macfleet-loop", daemon=True)
        self._thread.start()
        self.runs: dict[str, _RunContext] = {}  # touched only on the loop
        self.host = f"{socket.gethostname()}:{os.getpid()}"

    def run(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        async def shut() -> None:
            await self.recorder.close()

        try:
            self.run(shut()).result(timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.engine.dispose()

    # ------------------------------------------------------------------ run contexts (on the loop)

    async def enter(self, run_id: str) -> _RunContext:
        ctx = self.runs.get(run_id)
        if ctx is None:

            def build() -> RunInputs:
                with Session(self.engine) as s:
                    return load_run_inputs(s, run_id)

            inputs = await asyncio.to_thread(build)
            ctx = self.runs.get(run_id)  # another task of the run may have built it meanwhile
            if ctx is None:
                ctx = self.runs[run_id] = _RunContext(inputs, run_settings(self.settings, inputs))
                ctx.watcher = asyncio.create_task(watch_halt(self.engine, run_id, ctx.halt))
        ctx.users += 1
        return ctx

    def leave(self, run_id: str, ctx: _RunContext) -> None:
        ctx.users -= 1
        if ctx.users <= 0 and self.runs.get(run_id) is ctx:
            del self.runs[run_id]  # re-read on the run's next task (the inputs stay fresh)
            if ctx.watcher is not None:
                ctx.watcher.cancel()


_runtime: list[WorkerRuntime] = []
_runtime_lock = threading.Lock()


def runtime(settings: Settings) -> WorkerRuntime:
    with _runtime_lock:
        if not _runtime:
            _runtime.append(WorkerRuntime(settings))
        return _runtime[0]


def _close_runtime(**_kw: Any) -> None:
    with _runtime_lock:
        if _runtime:
            _runtime.pop().close()


worker_shutdown.connect(_close_runtime, weak=False)


@dataclass
class _Progress:
    """The device's last finished step, written on the loop and read by the task thread."""

    device: str
    step: str | None = None
    status: str | None = None
    version: int = 0
    wave: int | None = None  # the job's wave, once read (its advance may then skip counting the run)

    def on_event(self, ev: RunEvent) -> None:
        if isinstance(ev, StepFinished):
            self.step, self.status = ev.step, ev.status
            self.version += 1


def _summary(job: DeviceJob | None, device: str, note: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "device": device,
        "status": job.status if job else "unknown",
        "step": job.current_step if job else None,
        "error_type": job.error_type if job else None,
        "message": LOG_REDACTOR.redact(job.error_message or "")[:MESSAGE_CHARS] or None if job else None,
    }
    if note:
        out["note"] = note
    return out


async def _device_job(rt: WorkerRuntime, run_id: str, job_id: str, device: str, task_id: str,
                      progress: _Progress) -> dict[str, Any]:  # fmt: skip
    def read() -> tuple[DeviceJob | None, Run | None]:
        with Session(rt.engine) as s:
            return s.get(DeviceJob, job_id), s.get(Run, run_id)

    job, run = await asyncio.to_thread(read)
    if job is None or run is None or job.run_id != run_id:
        return {"device": device, "status": "unknown", "note": "no such job in this run"}
    progress.wave = job.wave
    if job.status not in JobStatus.unfinished():
        return _summary(job, device, "already finished: nothing ran")
    if run.status != RunStatus.RUNNING.value:
        await asyncio.to_thread(_requeue, rt.engine, job_id)
        return _summary(job, device, f"run is {run.status}: left for `runs resume`")
    ctx = await rt.enter(run_id)
    stop = asyncio.Event()
    if ctx.halted_by:
        stop.set()
    ctx.stops.add(stop)
    c = rt.settings.celery
    owner = f"celery:{rt.host}:{task_id[:12]}:{new_id()[:6]}"  # per execution: a duplicate never shares it
    ex = JobExecutor(rt.engine, rt.settings, owner=owner, on_event=progress.on_event, stop=stop,
                     lease_ttl=rt.settings.deploy.lease_ttl)  # fmt: skip
    beat = asyncio.create_task(ex.heartbeat(run_id))
    work = asyncio.create_task(
        DeviceJobWork(ex, ctx.inputs, ctx.run_settings, rt.recorder, job_id, job.device_id, device,
                      pin_host_key(rt.engine)).run()
    )
    timed_out = False
    try:
        done, _ = await asyncio.wait({work}, timeout=c.effective_soft_limit)
        if not done:  # soft limit: finish the step in progress (and the always-steps), start no other
            timed_out = True
            stop.set()
            done, _ = await asyncio.wait({work}, timeout=max(1.0, c.task_time_limit - c.effective_soft_limit))
            if not done:
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        if not timed_out:
            try:
                work.result()
            except OperationalError:
                raise  # the database is restarting: the task retries (the claim keeps that safe)
            except Exception as e:  # a bug or an unexpected input: recorded on the job, never left running
                log.exception("device job %s (%s) crashed", job_id, device)
                await asyncio.to_thread(record_crash, rt.engine, job_id, owner, e)
    finally:
        beat.cancel()
        ctx.stops.discard(stop)
        rt.leave(run_id, ctx)
    if timed_out:
        await asyncio.to_thread(_record_time_limit, rt.engine, job_id, progress.step, c.task_time_limit)
    after, _ = await asyncio.to_thread(read)
    claimed = work.done() and not work.cancelled() and work.exception() is None and work.result() is not None
    return _summary(after, device, None if claimed else "not claimed: finished, or held by another execution")


def _requeue(engine: Engine, job_id: str) -> None:
    """A queued job of a run that is not running goes back to pending (`runs resume` publishes it)."""
    with Session(engine) as s:
        job = s.get(DeviceJob, job_id)
        if job is not None and job.status == JobStatus.QUEUED.value:
            job.status = JobStatus.PENDING.value
            s.add(job)
            s.commit()


def _record_time_limit(engine: Engine, job_id: str, step: str | None, limit: float) -> None:
    with Session(engine) as s:
        job = s.get(DeviceJob, job_id)
        if job is not None and job.status in JobStatus.unfinished():
            job.status = JobStatus.FAILED.value
            job.error_type = "TimeLimitExceeded"
            job.error_message = f"the device job passed its time limit ({limit:g} s); last step done: {step}"
            job.ended_at = utcnow()
            s.add(job)
            s.commit()


def device_job(task: Task, run_id: str, job_id: str, device: str) -> dict[str, Any]:
    """The body of `macfleet.device_job` (see the module docstring)."""
    app: MacfleetCelery = task.app
    rt = runtime(app.settings)
    progress = _Progress(device)
    task_id = str(task.request.id or new_id())
    fut = rt.run(_device_job(rt, run_id, job_id, device, task_id, progress))
    reported = 0
    while True:
        try:
            result: dict[str, Any] = fut.result(timeout=1.0)
            break
        except concurrent.futures.TimeoutError:
            if progress.version != reported and app.conf.result_backend:
                reported = progress.version
                try:
                    task.update_state(
                        state="PROGRESS",
                        meta={
                            "device": device,
                            "run_id": run_id,
                            "step": progress.step,
                            "status": progress.status,
                        },
                    )
                except Exception as e:  # progress is best effort (the backend may be restarting)
                    log.debug("progress not reported: %s", e)
    try:
        advance(rt.engine, app, run_id, finished_wave=progress.wave)
    except PublishError as e:
        log.warning("run %s halted: %s", run_id, e)
    return result


def advance_run(task: Task, run_id: str) -> str:
    """The body of `macfleet.advance_run`: open the next wave / finish the run (after a wave pause)."""
    app: MacfleetCelery = task.app
    try:
        return advance(runtime(app.settings).engine, app, run_id)
    except PublishError as e:
        return f"halted: {e}"


def register(app: Celery) -> None:
    """Register the tasks on app (a `MacfleetCelery`)."""
    retry_on = (OperationalError,)  # the database is restarting: try again (the claim keeps it safe)
    app.task(name=DEVICE_TASK, bind=True, autoretry_for=retry_on, retry_backoff=2, retry_backoff_max=60,
             max_retries=20, acks_late=True)(device_job)  # fmt: skip
    app.task(name=ADVANCE_TASK, bind=True, autoretry_for=retry_on, retry_backoff=2, max_retries=20)(
        advance_run
    )
