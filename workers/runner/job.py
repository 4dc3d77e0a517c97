"""Working on one device job wherever it runs (the local driver or a Celery worker): claim its lease and
the device's lock, build its inputs from the database, run the workflow, record the outcome, release.

The claim is a compare-and-set in the database, so a redelivered task, a second controller or a resumed
run can never work on the device at the same time; a holder that died leaves a lease that expires after
`lease_ttl`, and the next claimant waits it out, then re-probes the Mac (the runner re-plans from facts).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from datetime import timedelta
from functools import cache
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from orchestrator import leases
from orchestrator.config import Settings
from orchestrator.secrets import SecretBox
from orchestrator.state.models import Device, DeviceJob, HostKeyPin, JobStatus, Run, RunStatus, new_id, utcnow
from workers.events import JobFinished, RunEvent
from workers.runner.device import DeviceResult, DeviceRunner, DeviceWork, RunSettings
from workers.runner.inputs import InputError, RunInputs, device_work
from workers.runner.recorder import Recorder
from workers.ssh import Timeouts, parse_public_key

LEASE_TTL = 60.0
UNFINISHED = (JobStatus.PENDING.value, JobStatus.INTERRUPTED.value, JobStatus.RUNNING.value)


def new_owner() -> str:
    return f"local:{socket.gethostname()}:{os.getpid()}:{new_id()[:8]}"


def timeouts_of(settings: Settings) -> Timeouts:
    s = settings.ssh
    return Timeouts(
        connect=s.connect_timeout,
        login=max(s.connect_timeout, 30.0),
        command=s.command_timeout,
        keepalive_interval=s.keepalive_interval,
        keepalive_count_max=s.keepalive_count_max,
    )


def pin_host_key(engine: Engine) -> Callable[[Device, str, str], None]:
    def pin(device: Device, line: str, fingerprint: str) -> None:
        key = parse_public_key(line)
        with Session(engine) as s:
            s.add(HostKeyPin(device_id=device.id, address=device.address, port=device.port,
                             key_type=key.get_algorithm(), public_key=line,
                             fingerprint_sha256=fingerprint, source="tofu"))
            s.commit()

    return pin


class JobExecutor:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        owner: str,
        on_event: Callable[[RunEvent], None] | None,
        stop: asyncio.Event,
        lease_ttl: float = LEASE_TTL,
    ) -> None:
        self.lease_ttl = lease_ttl
        self.halted_by: str | None = None
        self.engine = engine
        self.settings = settings
        self.owner = owner
        self.on_event = on_event or (lambda _e: None)
        self.stop = stop
        self.held: dict[str, str] = {}  # job id -> device id

    @cache  # noqa: B019  (one driver per run; the box is made once, on first need)
    def box(self) -> SecretBox:
        return SecretBox.from_settings(self.settings)

    async def heartbeat(self, run_id: str) -> None:
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            await asyncio.to_thread(self._renew, list(self.held), list(self.held.values()), run_id)

    def _renew(self, jobs: list[str], devices: list[str], run_id: str) -> None:
        with Session(self.engine) as s:
            leases.renew_jobs(s, jobs, self.owner, self.lease_ttl)
            leases.renew_devices(s, devices, run_id, self.lease_ttl)

    async def watch_halt(self, run_id: str, every: float = 1.0) -> None:
        """`orchestrate runs halt` marks the run halted in the database: stop starting devices."""
        while not self.stop.is_set():
            await asyncio.sleep(every)

            def status() -> tuple[str, str | None]:
                with Session(self.engine) as s:
                    run = s.get(Run, run_id)
                    return (run.status, run.halt_reason) if run else ("", None)

            state, reason = await asyncio.to_thread(status)
            if state == RunStatus.HALTED.value:
                self.halted_by = reason or "halted by hand"
                self.stop.set()

    async def claim(self, job_id: str, device_id: str, run_id: str) -> str | None:
        """None when claimed; else why not ("done", "busy:RUN"). Waits out a dead holder's lease."""
        deadline = asyncio.get_running_loop().time() + self.lease_ttl + 5
        while True:
            def attempt() -> str | None:
                with Session(self.engine) as s:
                    if not leases.claim_job(s, job_id, self.owner, self.lease_ttl):
                        job = s.get(DeviceJob, job_id)
                        if job is None or job.status not in UNFINISHED:
                            return "done"
                        return "leased"
                    if not leases.lock_device(s, device_id, run_id, self.owner, self.lease_ttl):
                        holder = leases.device_holder(s, device_id)
                        leases_release(s, job_id, self.owner)
                        return f"busy:{holder}"
                    return None

            why = await asyncio.to_thread(attempt)
            if why != "leased" or asyncio.get_running_loop().time() > deadline or self.stop.is_set():
                return why
            await asyncio.sleep(1.0)  # another holder's lease (a dead controller's) has to expire first


    async def run_job(
        self,
        inputs: RunInputs,
        run_settings: RunSettings,
        recorder: Recorder,
        job_id: str,
        device_id: str,
        name: str,
        pin: Callable[[Device, str, str], None] | None = None,
    ) -> DeviceResult | None:
        """Claim, work, release. None when the job was not ours to run (finished, busy, still leased)."""
        run_id = run_settings.run_id
        why = await self.claim(job_id, device_id, run_id)
        if why is not None:
            if why.startswith("busy:"):
                msg = f"{name} is held by run {why[5:]}; wait for it or halt it"
                recorder.job(job_id, status=JobStatus.FAILED.value, error_type="DeviceBusy",
                             error_message=msg, ended_at=utcnow())
                self.on_event(JobFinished(run_id, name, JobStatus.FAILED.value, None, "DeviceBusy", msg))
            return None
        self.held[job_id] = device_id
        try:
            return await work_job(self, inputs, run_settings, recorder, job_id, device_id, name,
                                  pin or pin_host_key(self.engine))
        finally:
            self.held.pop(job_id, None)
            await recorder.flush()
            await asyncio.to_thread(self._release, job_id, device_id, run_id)

    def _release(self, job_id: str, device_id: str, run_id: str) -> None:
        with Session(self.engine) as s:
            leases_release(s, job_id, self.owner)
            leases.unlock_device(s, device_id, run_id)


def leases_release(session: Session, job_id: str, owner: str) -> None:
    job = session.get(DeviceJob, job_id)
    if job is not None and job.lease_owner == owner:
        job.lease_expires_at = utcnow() - timedelta(seconds=1)
        session.add(job)
        session.commit()


async def work_job(
    d: JobExecutor,
    inputs: RunInputs,
    run_settings: RunSettings,
    recorder: Recorder,
    job_id: str,
    device_id: str,
    name: str,
    pin: Callable[[Device, str, str], None],
) -> DeviceResult:
    def build() -> DeviceWork:
        with Session(d.engine) as s:
            job, device = s.get(DeviceJob, job_id), s.get(Device, device_id)
            assert job is not None and device is not None
            job.started_at = job.started_at or utcnow()
            s.add(job)
            s.commit()
            return device_work(s, d.settings, inputs, job, device, d.box, pin)

    try:
        work = await asyncio.to_thread(build)
    except (InputError, ValueError, KeyError) as e:
        error_type = e.error_type if isinstance(e, InputError) else "BadInput"
        recorder.job(job_id, status=JobStatus.FAILED.value, error_type=error_type, error_message=str(e),
                     ended_at=utcnow())
        recorder.device(device_id, last_run_id=run_settings.run_id, last_outcome="failed", last_error=str(e))
        d.on_event(JobFinished(run_settings.run_id, name, JobStatus.FAILED.value, None, error_type, str(e)))
        return DeviceResult(name=name, status=JobStatus.FAILED.value, error_type=error_type, message=str(e))
    result = await DeviceRunner(work, run_settings, recorder, d.on_event, d.stop).run()
    update: dict[str, Any] = {"last_run_id": run_settings.run_id, "last_outcome": result.status}
    if result.status == JobStatus.SUCCEEDED.value:
        update |= {"installed_version": getattr(work.params, "version", None), "connected": True,
                   "last_error": None}
    elif result.status == JobStatus.FAILED.value:
        update["last_error"] = f"{result.step}: {result.error_type}: {result.message}"
        if result.connected is not None:
            update["connected"] = result.connected
    recorder.device(device_id, **update)
    return result


