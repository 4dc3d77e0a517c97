"""Working on one device job wherever it runs (the local driver or a Celery worker): claim its lease and
the device's lock, build its inputs from the database, run the workflow, record the outcome, release.

The claim is a compare-and-set in the database, so a redelivered task, a second controller or a resumed
run can never work on the device at the same time; a holder that died leaves a lease that expires after
`lease_ttl`, and the next claimant waits it out, then re-probes the Mac (the runner re-plans from facts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from orchestrator import leases
from orchestrator.config import Settings
from orchestrator.redact import LOG_REDACTOR
from orchestrator.secrets import SecretBox
from orchestrator.state.models import (
    Artifact,
    Device,
    DeviceJob,
    HostKeyPin,
    JobStatus,
    new_id,
    utcnow,
)
from tasks.model import Outcome
from tasks.refs import DmgRef
from workers.events import JobFinished, RunEvent
from workers.runner.device import DeviceResult, DeviceRunner, DeviceWork, RunSettings
from workers.runner.inputs import CA_ADDED, InputError, RunInputs, device_work
from workers.runner.recorder import Recorder
from workers.ssh import Timeouts, parse_public_key
from workers.ssh.inflight import UploadLimits, set_upload_limits

LEASE_TTL = 60.0


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


def upload_limits_of(settings: Settings) -> UploadLimits:
    s = settings.ssh
    return UploadLimits(block=s.upload_block_size, window=s.upload_window, budget=s.upload_budget)


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
        self.engine = engine
        self.settings = settings
        self.owner = owner
        self.on_event = on_event or (lambda _e: None)
        self.stop = stop
        self.held: dict[str, str] = {}  # job id -> device id
        set_upload_limits(upload_limits_of(settings))  # the process's upload memory bound ([ssh])

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


OUTCOMES = frozenset(o.value for o in Outcome)  # the job statuses a workflow's device_update reads


@dataclass
class DeviceJobWork:
    """One device job worked here: claim its lease and the device's lock, build its inputs, run the
    workflow (an unreachable Mac retried, a failure rolled back where the workflow says), record the device
    row the workflow says, release. The workflow is asked for everything its kind means."""

    ex: JobExecutor
    inputs: RunInputs
    settings: RunSettings
    recorder: Recorder
    job_id: str
    device_id: str
    name: str
    pin: Callable[[Device, str, str], None]

    @property
    def run_id(self) -> str:
        return self.settings.run_id

    async def run(self) -> DeviceResult | None:
        claimed = await self.claim()
        if isinstance(claimed, str):
            if claimed.startswith("busy:"):
                msg = f"{self.name} is held by run {claimed[5:]}; wait for it or halt it"
                self.fail("DeviceBusy", msg, device_row=False)  # the device's row is the holding run's
            return None
        self.ex.held[self.job_id] = self.device_id
        try:
            if isinstance(claimed, Exception):
                e = claimed
                return self.fail(e.error_type if isinstance(e, InputError) else "BadInput", str(e))
            work = claimed
            try:
                result = await DeviceRunner(work, self.settings, self.recorder, self.ex.on_event,
                                            self.ex.stop).run()  # fmt: skip
                result = await self.retry_unreachable(work, result)
                return await self.record(work, result)
            finally:
                work.materials.release()
        finally:
            await self.release()

    async def claim(self) -> str | DeviceWork | Exception:
        """The job's work, built once the job and its device are held (one thread hop, one transaction);
        else why not ("done", "busy:RUN"), or the bad input that kept its work from being built (the job
        is held then, to be recorded failed). Waits out a dead holder's lease."""
        ex = self.ex
        deadline = asyncio.get_running_loop().time() + ex.lease_ttl + 5
        while True:
            def attempt() -> str | DeviceWork | Exception:
                with Session(ex.engine) as s:
                    why = leases.claim_device_job(s, self.job_id, self.device_id, self.run_id, ex.owner,
                                                  ex.lease_ttl)  # fmt: skip
                    if why is not None:
                        return why
                    try:
                        return self.build(s)
                    except (InputError, ValueError, KeyError) as e:
                        return e

            claimed = await asyncio.to_thread(attempt)
            if claimed != "leased" or asyncio.get_running_loop().time() > deadline or ex.stop.is_set():
                return claimed
            await asyncio.sleep(1.0)  # another holder's lease (a dead controller's) has to expire first

    def build(self, s: Session) -> DeviceWork:
        """The job's DeviceWork from the database (read only: the claim stamped started_at)."""
        job, device = s.get(DeviceJob, self.job_id), s.get(Device, self.device_id)
        assert job is not None and device is not None
        return device_work(s, self.ex.settings, self.inputs, job, device, self.ex.box, self.pin)

    def fail(self, error_type: str, message: str, *, device_row: bool = True) -> DeviceResult:
        """The job failed before any connection (busy device, bad inputs): recorded as such."""
        failed = JobStatus.FAILED.value
        self.recorder.job(self.job_id, status=failed, error_type=error_type, error_message=message,
                          ended_at=utcnow())  # fmt: skip
        if device_row:
            self.recorder.device(self.device_id, last_run_id=self.run_id, last_outcome="failed",
                                 last_error=message)  # fmt: skip
        self.ex.on_event(JobFinished(self.run_id, self.name, failed, None, error_type, message))
        return DeviceResult(name=self.name, status=failed, error_type=error_type, message=message)

    async def retry_unreachable(self, work: DeviceWork, result: DeviceResult) -> DeviceResult:
        """Laptops sleep: with `retry_unreachable` seconds in the run's params, an unreachable Mac is retried
        with backoff (5 s doubling to 5 min) until it answers or the window closes."""
        stop = self.ex.stop
        window = float(self.inputs.params.get("retry_unreachable") or 0)
        deadline = asyncio.get_running_loop().time() + window
        delay = 5.0
        while (
            window
            and result.status == JobStatus.FAILED.value
            and result.error_type == "Unreachable"
            and asyncio.get_running_loop().time() + delay < deadline
            and not stop.is_set()
        ):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                break
            delay = min(delay * 2, 300.0)
            work.attempt += 1
            result = await DeviceRunner(work, self.settings, self.recorder, self.ex.on_event, stop).run()
        return result

    async def record(self, work: DeviceWork, result: DeviceResult) -> DeviceResult:
        """Audit the CAs the job trusted, then write the device row: the outcome, and what the workflow says
        it means for the row (or, after a failure it may roll back, the version put back)."""
        wf = self.inputs.workflow
        added = [(ca.sha256, ca.sha1) for ca in wf.trusted_cas(work.params, result.executed)]
        for sha256, sha1 in added:  # committed with the job's last records, before its lease is let go
            doc = {"device_id": self.device_id, "run_id": self.run_id, "sha256": sha256, "sha1": sha1}
            self.recorder.audit("runner", CA_ADDED, json.dumps(doc))
        update: dict[str, Any] = {"last_run_id": self.run_id, "last_outcome": result.status}
        if result.status == JobStatus.SUCCEEDED.value:
            update["last_error"] = None
        elif result.status == JobStatus.UNVERIFIED.value:
            update["last_error"] = f"{result.step}: {result.message}"
        elif result.status in (JobStatus.AWAITING_TRUST.value, JobStatus.FAILED.value):
            update["last_error"] = f"{result.step}: {result.error_type}: {result.message}"
        if result.status in OUTCOMES:
            update |= wf.device_update(Outcome(result.status), result.connected, work.params).columns()
        if result.status == JobStatus.FAILED.value:
            rolled = await self.rollback(work, result)
            if rolled is not None:
                update |= rolled
                result.status = JobStatus.ROLLED_BACK.value
        self.recorder.device(self.device_id, **update)
        return result

    async def rollback(self, work: DeviceWork, result: DeviceResult) -> dict[str, Any] | None:
        """With `rollback` in the run's params and a failure at a step after which the workflow's rollback
        applies: put back the version the Mac had before (its DMG from the artifact store). Returns the
        device row update when the rollback succeeded, None when none applied or it failed (the job stays
        failed)."""
        rb = self.inputs.workflow.rollback
        if (
            rb is None
            or not self.inputs.params.get("rollback")
            or result.step not in rb.after
            or result.facts is None
        ):
            return None
        previous, target = rb.previous(result.facts, work.params), rb.target(work.params)
        if previous is None:
            return None
        found = await asyncio.to_thread(_artifact_of_version, self.ex.engine, previous)
        if found is None:
            msg = (f"{result.message} — rollback to {previous} impossible: its DMG is not in the artifact "
                   f"store (orchestrate artifact add)")
            self.recorder.job(work.job_id, error_message=msg)
            result.message = msg
            return None
        dmg_ref, path = found
        back = replace(work, params=rb.params(work.params, dmg_ref))
        back.materials.add_source("dmg", path)
        settings = replace(self.settings, step_prefix="rollback:")
        again = await DeviceRunner(back, settings, self.recorder, self.ex.on_event, self.ex.stop).run()
        if again.status != JobStatus.SUCCEEDED.value:
            msg = f"{result.message} — rollback to {previous} failed too at {again.step}: {again.message}"
            self.recorder.job(work.job_id, status=JobStatus.FAILED.value, current_step=result.step,
                              error_type=result.error_type, error_message=msg)  # fmt: skip
            result.message = msg
            return None
        msg = (f"upgrade to {target} failed at {result.step} ({result.error_type}: {result.message}); "
               f"rolled back to {previous}")
        self.recorder.job(work.job_id, status=JobStatus.ROLLED_BACK.value, current_step=result.step,
                          error_type=result.error_type, error_message=msg, ended_at=utcnow())  # fmt: skip
        self.ex.on_event(JobFinished(self.run_id, work.name, JobStatus.ROLLED_BACK.value, result.step,
                                     result.error_type, msg))  # fmt: skip
        result.message = msg
        return {"installed_version": previous, "connected": True,
                "last_outcome": JobStatus.ROLLED_BACK.value, "last_error": msg}  # fmt: skip

    async def release(self) -> None:
        """Let go of the job's lease and the device's lock, in the recorder's transaction after everything
        the job recorded (the flush waits for the commit)."""
        self.ex.held.pop(self.job_id, None)
        job_id, device_id, run_id, owner = self.job_id, self.device_id, self.run_id, self.ex.owner

        def let_go(s: Session) -> None:
            leases.release_job(s, job_id, owner, commit=False)
            leases.unlock_device(s, device_id, run_id, commit=False)

        self.recorder.call(let_go)
        await self.recorder.flush()


def record_crash(engine: Engine, job_id: str, owner: str, exc: BaseException) -> str:
    """Mark the job failed when THIS execution held it (a duplicate that holds it now is left alone): an
    unexpected error in one device's job is that job's outcome, never the run's end. Returns the message
    (redacted)."""
    what = LOG_REDACTOR.redact(f"the worker failed on this device: {type(exc).__name__}: {exc}")
    with Session(engine) as s:
        job = s.get(DeviceJob, job_id)
        if job is not None and job.status in JobStatus.unfinished() and job.lease_owner == owner:
            job.status = JobStatus.FAILED.value
            job.error_type = "WorkerError"
            job.error_message = what
            job.ended_at = utcnow()
            s.add(job)
            s.commit()
    return what


def _artifact_of_version(engine: Engine, version: str) -> tuple[DmgRef, Path] | None:
    with Session(engine) as s:
        art = s.exec(select(Artifact).where(Artifact.version == version)).first()
        if art is None:
            return None
        ref = DmgRef(version=art.version, sha256=art.sha256, size=art.size, file_name=art.filename)
        return ref, Path(art.path)
