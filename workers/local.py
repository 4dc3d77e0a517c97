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
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from orchestrator.config import Settings
from orchestrator.state.models import (
    Device,
    DeviceJob,
    JobStatus,
    Run,
    RunStatus,
    new_id,
    utcnow,
)
from orchestrator.waves import FINISHED_BAD, GateDecision, Threshold, decide, parse_threshold
from workers.events import RunEvent
from workers.limits import raise_nofile_limit
from workers.runner.device import DeviceResult, DeviceRunner, DeviceWork, RunSettings
from workers.runner.inputs import InputError, device_work, load_run_inputs
from workers.runner.job import (
    JobExecutor,
    new_owner,
    pin_host_key,
    timeouts_of,
)
from workers.runner.recorder import NullRecorder, Recorder


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str
    counts: dict[str, int]
    failed: list[tuple[str, str | None, str | None, str | None]]  # (device, step, error_type, message)
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
        run = s.get(Run, run_id)
        assert run is not None
        run.status = RunStatus.RUNNING.value
        run.started_at = run.started_at or utcnow()
        run.ended_at = None
        run.halt_reason = None
        s.add(run)
        s.commit()
    limit = inputs.params.get("max_failures")
    threshold = parse_threshold(str(limit)) if limit not in (None, "") else None
    pause = float(inputs.params.get("pause") or 0)
    recorder = Recorder(engine).start()
    run_settings = RunSettings(
        run_id=run_id,
        workflow=inputs.workflow,
        timeouts=timeouts_of(settings),
        verify_timeout=float(inputs.params.get("verify_timeout") or settings.deploy.verify_timeout),
        verify_interval=settings.verify.interval,
        verify_rules=settings.verify.rules(),
        private_dir=inputs.private_dir,
    )
    sem = asyncio.Semaphore(concurrency or settings.ssh.concurrency)
    pin = pin_host_key(engine)

    async def one(job_id: str, device_id: str, name: str) -> DeviceResult | None:
        async with sem:
            if stop.is_set():
                return None
            return await d.run_job(inputs, run_settings, recorder, job_id, device_id, name, pin)

    beat = asyncio.create_task(d.heartbeat(run_id))
    watch = asyncio.create_task(d.watch_halt(run_id))
    results: list[DeviceResult | None] = []
    halt: str | None = None
    try:
        for number, wave in enumerate(sorted(by_wave)):
            gate = await asyncio.to_thread(_gate, engine, run_id, threshold)
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
            results += await asyncio.gather(*(one(*j) for j in by_wave[wave]))
    finally:
        beat.cancel()
        watch.cancel()
        await recorder.close()
    return await asyncio.to_thread(
        _finish_run, engine, run_id, stop.is_set(), [r for r in results if r], halt, d.halted_by
    )


def _gate(engine: Engine, run_id: str, threshold: Threshold | None) -> GateDecision:
    """The wave gate, from the database (so it survives a controller restart)."""
    with Session(engine) as s:
        rows = s.exec(
            select(DeviceJob.wave, DeviceJob.status, Device.name)
            .where(DeviceJob.run_id == run_id, DeviceJob.device_id == Device.id)
        ).all()
    counts: dict[int, Counter[str]] = {}
    failed: list[str] = []
    for wave, status, name in rows:
        counts.setdefault(wave, Counter())[status] += 1
        if status in FINISHED_BAD:
            failed.append(name)
    return decide(counts, threshold or Threshold(count=len(rows) + 1), sorted(failed))


def _finish_run(
    engine: Engine,
    run_id: str,
    stopped: bool,
    results: list[DeviceResult],
    halt: str | None = None,
    halted_by: str | None = None,
) -> RunOutcome:
    with Session(engine) as s:
        rows = s.exec(select(DeviceJob, Device).where(DeviceJob.run_id == run_id,
                                                       DeviceJob.device_id == Device.id)).all()
        counts = Counter(j.status for j, _ in rows)
        failed = sorted(
            (dev.name, j.current_step, j.error_type, j.error_message)
            for j, dev in rows
            if j.status == JobStatus.FAILED.value
        )
        run = s.get(Run, run_id)
        assert run is not None
        unfinished = sum(counts[k] for k in JobStatus.unfinished())
        if unfinished:
            run.status = RunStatus.HALTED.value
            if halt:
                why = f"halted: {halt}; {unfinished} device(s) left untouched"
            elif halted_by:
                why = halted_by
            elif stopped:
                why = "interrupted by the operator"
            else:
                why = f"{unfinished} device(s) could not be claimed (held by another controller?)"
            run.halt_reason = f"{why}; resume with: orchestrate runs resume {run_id[:12]}"
        else:
            run.status = RunStatus.FAILED.value if failed else RunStatus.SUCCEEDED.value
            run.halt_reason = None
            run.ended_at = utcnow()
        s.add(run)
        s.commit()
        return RunOutcome(run_id, run.status, dict(counts), failed, results)


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
    run_settings = RunSettings(run_id=run.id, workflow=inputs.workflow, timeouts=timeouts_of(settings),
                               private_dir=inputs.private_dir)
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
            result = await DeviceRunner(work, run_settings, null, plan_only=True).run()
            facts = result.facts.as_json() if result.facts is not None else None
            steps = [(name, plan.as_json()) for name, plan in result.plans.items()]
            failed = result.status == JobStatus.FAILED.value
            error = (result.error_type or "Error", result.message or "") if failed else None
            return DevicePlan(device.name, facts, steps, error, result.facts)

    return list(await asyncio.gather(*(one(dev) for dev in devices)))
