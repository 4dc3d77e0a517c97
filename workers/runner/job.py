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
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from orchestrator import leases
from orchestrator.config import Settings
from orchestrator.secrets import SecretBox
from orchestrator.state.models import (
    Artifact,
    AuditEvent,
    Device,
    DeviceJob,
    HostKeyPin,
    JobStatus,
    new_id,
    utcnow,
)
from tasks.install.params import DmgRef, rollback_params
from workers.events import JobFinished, RunEvent
from workers.runner.device import DeviceResult, DeviceRunner, DeviceWork, RunSettings
from workers.runner.inputs import CA_ADDED, INSTALL_KINDS, InputError, RunInputs, device_work
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

    async def claim(self, job_id: str, device_id: str, run_id: str) -> str | None:
        """None when claimed; else why not ("done", "busy:RUN"). Waits out a dead holder's lease."""
        deadline = asyncio.get_running_loop().time() + self.lease_ttl + 5
        while True:
            def attempt() -> str | None:
                with Session(self.engine) as s:
                    if not leases.claim_job(s, job_id, self.owner, self.lease_ttl):
                        job = s.get(DeviceJob, job_id)
                        if job is None or job.status not in JobStatus.unfinished():
                            return "done"
                        return "leased"
                    if not leases.lock_device(s, device_id, run_id, self.owner, self.lease_ttl):
                        holder = leases.device_holder(s, device_id)
                        leases.release_job(s, job_id, self.owner)
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
        with Session(self.engine) as s:  # one transaction for both
            leases.release_job(s, job_id, self.owner, commit=False)
            leases.unlock_device(s, device_id, run_id, commit=False)
            s.commit()


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
        with Session(d.engine) as s:  # read only: the claim stamped started_at
            job, device = s.get(DeviceJob, job_id), s.get(Device, device_id)
            assert job is not None and device is not None
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
    try:
        return await _run_work(d, inputs, run_settings, recorder, work, device_id)
    finally:
        work.materials.release()


async def _run_work(
    d: JobExecutor,
    inputs: RunInputs,
    run_settings: RunSettings,
    recorder: Recorder,
    work: DeviceWork,
    device_id: str,
) -> DeviceResult:
    result = await DeviceRunner(work, run_settings, recorder, d.on_event, d.stop).run()
    result = await _retry_unreachable(d, inputs, run_settings, recorder, work, result)
    added = _cas_trusted(work, result)
    if added:
        await asyncio.to_thread(_record_cas_added, d.engine, device_id, run_settings.run_id, added)
    update: dict[str, Any] = {"last_run_id": run_settings.run_id, "last_outcome": result.status}
    if result.status == JobStatus.SUCCEEDED.value:
        update["last_error"] = None
        if inputs.kind in INSTALL_KINDS:
            update |= {"installed_version": work.params.version, "connected": True}
        elif inputs.kind == "uninstall":
            update |= {"installed_version": None, "connected": False}
        elif inputs.kind == "stop":
            update["connected"] = False
        elif result.connected:
            update["connected"] = True
    elif result.status == JobStatus.UNVERIFIED.value:
        # installed and running; whether it reached the Switch is unknown (not false): converge and
        # `status --refresh` look again
        update |= {"connected": None, "last_error": f"{result.step}: {result.message}"}
        if inputs.kind in INSTALL_KINDS:
            update["installed_version"] = work.params.version
    elif result.status == JobStatus.AWAITING_TRUST.value:
        # installed and configured: converge (which targets installed devices) finishes it once trust is seen
        update["last_error"] = f"{result.step}: {result.error_type}: {result.message}"
        if inputs.kind in INSTALL_KINDS:
            update |= {"installed_version": work.params.version, "connected": False}
    elif result.status == JobStatus.FAILED.value:
        update["last_error"] = f"{result.step}: {result.error_type}: {result.message}"
        if result.connected is not None:
            update["connected"] = result.connected
        rolled = await _rollback(d, inputs, run_settings, recorder, work, result)
        if rolled is not None:
            update |= rolled
            result.status = JobStatus.ROLLED_BACK.value
    recorder.device(device_id, **update)
    return result


ROLLBACK_AFTER = ("install", "identity", "start", "verify")  # failures after the new version may be in


async def _retry_unreachable(
    d: JobExecutor,
    inputs: RunInputs,
    run_settings: RunSettings,
    recorder: Recorder,
    work: DeviceWork,
    result: DeviceResult,
) -> DeviceResult:
    """Laptops sleep: with `retry_unreachable` seconds in the run's params, an unreachable Mac is retried
    with backoff (5 s doubling to 5 min) until it answers or the window closes."""
    window = float(inputs.params.get("retry_unreachable") or 0)
    deadline = asyncio.get_running_loop().time() + window
    delay = 5.0
    while (
        window
        and result.status == JobStatus.FAILED.value
        and result.error_type == "Unreachable"
        and asyncio.get_running_loop().time() + delay < deadline
        and not d.stop.is_set()
    ):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(d.stop.wait(), delay)
        if d.stop.is_set():
            break
        delay = min(delay * 2, 300.0)
        work.attempt += 1
        result = await DeviceRunner(work, run_settings, recorder, d.on_event, d.stop).run()
    return result


async def _rollback(
    d: JobExecutor,
    inputs: RunInputs,
    run_settings: RunSettings,
    recorder: Recorder,
    work: DeviceWork,
    result: DeviceResult,
) -> dict[str, Any] | None:
    """With `rollback` in an upgrade's params: put back the version the Mac had before (its DMG from the
    artifact store), re-granting key access to the old binary. Returns the device row update when the
    rollback succeeded, None when no rollback applied or it failed (the job stays failed)."""
    facts = result.facts
    previous = getattr(facts, "client_version", None)
    target = getattr(work.params, "version", None)
    if (
        not inputs.params.get("rollback")
        or result.step not in ROLLBACK_AFTER
        or previous is None
        or previous == target
    ):
        return None
    found = await asyncio.to_thread(_artifact_of_version, d.engine, previous)
    if found is None:
        msg = (f"{result.message} — rollback to {previous} impossible: its DMG is not in the artifact "
               f"store (orchestrate artifact add)")
        recorder.job(work.job_id, error_message=msg)
        result.message = msg
        return None
    dmg_ref, path = found
    back = replace(work, params=rollback_params(work.params, dmg_ref))
    back.materials.add_source("dmg", path)
    settings = replace(run_settings, step_prefix="rollback:")
    again = await DeviceRunner(back, settings, recorder, d.on_event, d.stop).run()
    if again.status != JobStatus.SUCCEEDED.value:
        msg = f"{result.message} — rollback to {previous} failed too at {again.step}: {again.message}"
        recorder.job(work.job_id, status=JobStatus.FAILED.value, current_step=result.step,
                     error_type=result.error_type, error_message=msg)
        result.message = msg
        return None
    msg = (f"upgrade to {target} failed at {result.step} ({result.error_type}: {result.message}); "
           f"rolled back to {previous}")
    recorder.job(work.job_id, status=JobStatus.ROLLED_BACK.value, current_step=result.step,
                 error_type=result.error_type, error_message=msg, ended_at=utcnow())
    d.on_event(JobFinished(run_settings.run_id, work.name, JobStatus.ROLLED_BACK.value, result.step,
                           result.error_type, msg))
    result.message = msg
    return {"installed_version": previous, "connected": True, "last_outcome": JobStatus.ROLLED_BACK.value,
            "last_error": msg}


def _artifact_of_version(engine: Engine, version: str) -> tuple[DmgRef, Path] | None:
    with Session(engine) as s:
        art = s.exec(select(Artifact).where(Artifact.version == version)).first()
        if art is None:
            return None
        ref = DmgRef(version=art.version, sha256=art.sha256, size=art.size, file_name=art.filename)
        return ref, Path(art.path)


def _cas_trusted(work: DeviceWork, result: DeviceResult) -> list[tuple[str, str]]:
    """(sha256, sha1) of the CAs this run put in the System keychain: `add-trusted-cert` that ran (a refused
    one too: it adds the certificate before it asks for the trust change) or `add-certificates`."""
    cas = getattr(work.params, "cas", ())
    by_path = {work.params.ca_path(ca): ca for ca in cas} if cas else {}
    out = []
    for step, argv in result.executed:
        if step == "trust" and {"add-trusted-cert", "add-certificates"} & set(argv) and argv[-1] in by_path:
            ca = by_path[argv[-1]]
            out.append((ca.sha256, ca.sha1))
    return out


def _record_cas_added(engine: Engine, device_id: str, run_id: str, added: list[tuple[str, str]]) -> None:
    with Session(engine) as s:
        for sha256, sha1 in added:
            doc = {"device_id": device_id, "run_id": run_id, "sha256": sha256, "sha1": sha1}
            s.add(AuditEvent(actor="runner", action=CA_ADDED, params_json=json.dumps(doc)))
        s.commit()
