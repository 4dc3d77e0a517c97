"""The local driver: runs a run's device jobs in this process (asyncio), the embedded default.

It claims each job's lease and the device's lock in the database before touching the Mac, renews them
while it works, and releases them at the end — so a second controller, a redelivered Celery task or a
`runs resume` can never work on the same device at the same time. A controller that dies leaves leases
that expire after LEASE_TTL; `runs resume` then takes the jobs over and re-probes each Mac.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel import Session, col, select

from orchestrator import runs
from orchestrator.config import Settings
from orchestrator.state.models import Device, DeviceJob, JobStatus, Run, new_id
from orchestrator.waves import GateDecision
from workers.events import JobFinished, RunEvent
from workers.limits import raise_nofile_limit
from workers.runner.control import run_settings, watch_halt
from workers.runner.device import DeviceResult, DeviceRunner, DeviceWork
from workers.runner.inputs import InputError, device_work, load_run_inputs
from workers.runner.job import DeviceJobWork, JobExecutor, new_owner, pin_host_key, record_crash
from workers.runner.recorder import NullRecorder, Recorder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome(runs.RunSummary):
    """The run's summary, and each device's result as this driver saw it."""

    results: list[DeviceResult] = field(default_factory=list)


@dataclass(frozen=True)
class DevicePlan:
    device: str
    facts: dict[str, Any] | None
    steps: list[tuple[str, dict[str, Any]]]
    error: tuple[str, str] | None
    raw_facts: Any = None  # the workflow's facts record (the logs workflow carries the log tails in it)


async def drive(
    engine: Engine,
    settings: Settings,
    run_id: str,
    *,
    concurrency: int | None = None,
    on_event: Callable[[RunEvent], None] | None = None,
    stop: asyncio.Event | None = None,
    owner: str | None = None,
    lease_ttl: float | None = None,
    confirm: Callable[[int, int], Awaitable[bool]] | None = None,
    only: Collection[str] | None = None,
) -> RunOutcome:
    """Run every unfinished job of the run here, wave by wave; returns when all are done, the failure
    threshold halts the run, `runs halt` halts it, or `stop` is set (Ctrl-C)."""
    raise_nofile_limit()
    stop = stop or asyncio.Event()
    d = JobExecutor(engine, settings, owner=owner or new_owner(), on_event=on_event, stop=stop,
                lease_ttl=lease_ttl or settings.deploy.lease_ttl)
    with Session(engine) as s:
        inputs = load_run_inputs(s, run_id)
        rows = s.exec(
            select(DeviceJob, Device)
            .where(DeviceJob.run_id == run_id, col(DeviceJob.status).in_(JobStatus.unfinished()))
            .where(DeviceJob.device_id == Device.id)
            .order_by(col(DeviceJob.wave), col(Device.name))
        ).all()
        by_wave: dict[int, list[tuple[str, str, str]]] = {}
        for j, dev in rows:
            if only is None or j.id in only:  # `runs retry --failed`: those jobs and no others
                by_wave.setdefault(j.wave, []).append((j.id, dev.id, dev.name))
        runs.start_run(s, run_id)
        s.commit()
    pause = float(inputs.params.get("pause") or 0)
    recorder = Recorder(engine).start()
    rs = run_settings(settings, inputs)
    sem = asyncio.Semaphore(concurrency or settings.ssh.concurrency)
    pin = pin_host_key(engine)

    async def one(job_id: str, device_id: str, name: str) -> DeviceResult | None:
        async with sem:
            if stop.is_set():
                return None
            try:
                return await DeviceJobWork(d, inputs, rs, recorder, job_id, device_id, name, pin).run()
            except (OperationalError, InterfaceError):
                raise  # the database itself is gone: the run cannot record anything, `runs resume` later
            except Exception as e:  # a bug or an unexpected input: that job's failure, the others go on
                log.exception("device job %s (%s) crashed", job_id, name)
                msg = await asyncio.to_thread(record_crash, engine, job_id, d.owner, e)
                failed = JobStatus.FAILED.value
                d.on_event(JobFinished(run_id, name, failed, None, "WorkerError", msg))
                return DeviceResult(name=name, status=failed, error_type="WorkerError", message=msg)

    halted_by: list[str] = []

    def on_halt(why: str) -> None:
        halted_by[:] = [why]
        stop.set()

    beat = asyncio.create_task(d.heartbeat(run_id))
    watch = asyncio.create_task(watch_halt(engine, run_id, on_halt))
    results: list[DeviceResult | None] = []
    halt: str | None = None
    try:
        for number, wave in enumerate(sorted(by_wave)):
            gate = await asyncio.to_thread(_gate, engine, run_id)
            if gate.action == "halt":
                halt = gate.reason
                break
            if stop.is_set():
                break
            if number and pause:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
                if stop.is_set():
                    break
            if number and confirm is not None and not await confirm(wave, len(by_wave[wave])):
                halt = f"the operator declined to open wave {wave + 1}"
                break
            jobs = [asyncio.ensure_future(one(*j)) for j in by_wave[wave]]
            try:
                results += await asyncio.gather(*jobs)
            except BaseException:  # the database went away, or Ctrl-C: end the wave's other jobs first
                for job in jobs:
                    job.cancel()
                await asyncio.gather(*jobs, return_exceptions=True)
                raise
    finally:
        beat.cancel()
        watch.cancel()
        await recorder.close()
    done = [r for r in results if r]
    return await asyncio.to_thread(
        _finish, engine, run_id, done, stopped=stop.is_set(), halt=halt, halted_by=next(iter(halted_by), None)
    )


def _gate(engine: Engine, run_id: str) -> GateDecision:
    with Session(engine) as s:
        return runs.gate(s, run_id)


def _finish(
    engine: Engine, run_id: str, results: list[DeviceResult], *, stopped: bool, halt: str | None,
    halted_by: str | None,
) -> RunOutcome:
    with Session(engine) as s:
        summary = runs.finish_run(s, run_id, stopped=stopped, halt=halt, halted_by=halted_by)
        s.commit()
    return RunOutcome(summary.run_id, summary.status, summary.counts, summary.failed, results)


async def dry_run(
    engine: Engine,
    settings: Settings,
    params: dict[str, Any],
    device_ids: list[str],
    *,
    concurrency: int | None = None,
    kind: str = "install",
) -> list[DevicePlan]:
    """Gather facts (read-only) and compute every step's plan for each device; change nothing."""
    run = Run(id="dryrun-" + new_id()[:12], kind=kind, params_json=json.dumps(params))
    with Session(engine) as s:
        inputs = load_run_inputs(s, run)
        q = select(Device).where(col(Device.id).in_(device_ids)).order_by(col(Device.name))
        devices = s.exec(q).all()
    d = JobExecutor(engine, settings, owner=new_owner(), on_event=None, stop=asyncio.Event())
    rs = run_settings(settings, inputs)
    sem = asyncio.Semaphore(concurrency or settings.ssh.concurrency)
    null = NullRecorder()

    async def one(device: Device) -> DevicePlan:
        async with sem:
            def build() -> DeviceWork:
                with Session(engine) as s:
                    job = DeviceJob(id="dry", run_id=run.id, device_id=device.id)
                    return device_work(s, settings, inputs, job, device, d.box)

            try:
                work = await asyncio.to_thread(build)
            except (InputError, ValueError, KeyError) as e:
                kind_ = e.error_type if isinstance(e, InputError) else "BadInput"
                return DevicePlan(device.name, None, [], (kind_, str(e)))
            result = await DeviceRunner(work, rs, null, plan_only=True).run()
            facts = result.facts.as_json() if result.facts is not None else None
            steps = [(name, plan.as_json()) for name, plan in result.plans.items()]
            failed = result.status == JobStatus.FAILED.value
            error = (result.error_type or "Error", result.message or "") if failed else None
            return DevicePlan(device.name, facts, steps, error, result.facts)

    return list(await asyncio.gather(*(one(dev) for dev in devices)))
