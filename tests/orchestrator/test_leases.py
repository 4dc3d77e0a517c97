"""Job leases and device locks on SQLite and PostgreSQL: one holder at a time, the first start stamped once,
release and unlock in one transaction."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from orchestrator import leases
from orchestrator.state.models import DeviceJob, DeviceLock, Run, utcnow
from tests.orchestrator import run_seed as seed


def test_claim_stamps_the_first_start_once_and_excludes_others(engine: Engine) -> None:
    job_id, _, _ = seed.one_job(engine)
    first = utcnow().replace(microsecond=0)
    with Session(engine) as s:
        assert leases.claim_job(s, job_id, "ctl-a", 60, now=first)
        assert not leases.claim_job(s, job_id, "ctl-b", 60, now=first + timedelta(seconds=1))
        assert leases.claim_job(s, job_id, "ctl-a", 60, now=first + timedelta(seconds=30))  # renewing
        # another holder only once the lease has expired; the first start stays
        assert leases.claim_job(s, job_id, "ctl-b", 60, now=first + timedelta(seconds=200))
    with Session(engine) as s:
        job = s.get(DeviceJob, job_id)
        assert job is not None
        assert job.started_at == first and job.started_at.tzinfo is not None
        assert (job.lease_owner, job.attempts, job.status) == ("ctl-b", 3, "running")


def test_release_and_unlock_in_one_transaction(engine: Engine) -> None:
    job_id, device_id, run_id = seed.one_job(engine)
    with Session(engine) as s:
        other = Run(kind="install")
        s.add(other)
        s.commit()
        other_run = other.id
    with Session(engine) as s:
        assert leases.claim_job(s, job_id, "ctl-a", 60)
        assert leases.lock_device(s, device_id, run_id, "ctl-a", 60)
        assert not leases.lock_device(s, device_id, other_run, "ctl-b", 60)
        leases.release_job(s, job_id, "ctl-b", commit=False)  # not the holder: nothing changes
        leases.release_job(s, job_id, "ctl-a", commit=False)
        leases.unlock_device(s, device_id, run_id, commit=False)
        s.rollback()  # nothing was committed yet
        assert leases.device_holder(s, device_id) == run_id
        leases.release_job(s, job_id, "ctl-a", commit=False)
        leases.unlock_device(s, device_id, run_id, commit=False)
        s.commit()
    with Session(engine) as s:
        assert s.get(DeviceLock, device_id) is None
        assert leases.claim_job(s, job_id, "ctl-b", 60)  # released: free at once
        assert leases.lock_device(s, device_id, other_run, "ctl-b", 60)


def test_claim_device_job_takes_both_or_neither(engine: Engine) -> None:
    """The job's lease and the device's lock in one transaction: when another run holds the device, the job
    is left exactly as it was (not running, no attempt counted, no start stamped, no lease)."""
    job_id, device_id, run_id = seed.one_job(engine)
    other_job, _, other_run = _job_on(engine, device_id)
    with Session(engine) as s:
        assert leases.claim_device_job(s, other_job, device_id, other_run, "ctl-b", 60) is None
    with Session(engine) as s:
        assert leases.claim_device_job(s, job_id, device_id, run_id, "ctl-a", 60) == f"busy:{other_run}"
    with Session(engine) as s:
        job = s.get(DeviceJob, job_id)
        assert job is not None
        assert (job.status, job.attempts, job.started_at, job.lease_owner) == ("pending", 0, None, None)
        assert leases.device_holder(s, device_id) == other_run
        assert leases.claim_device_job(s, other_job, device_id, other_run, "ctl-a", 60) == "leased"
        leases.release_job(s, other_job, "ctl-b", commit=False)
        leases.unlock_device(s, device_id, other_run)
    with Session(engine) as s:
        assert leases.claim_device_job(s, job_id, device_id, run_id, "ctl-a", 60) is None
        s.get(DeviceJob, other_job).status = "succeeded"  # type: ignore[union-attr]
        s.commit()
        assert leases.claim_device_job(s, other_job, device_id, other_run, "ctl-b", 60) == "done"
    with Session(engine) as s:
        job = s.get(DeviceJob, job_id)
        assert job is not None and (job.status, job.attempts, job.lease_owner) == ("running", 1, "ctl-a")
        assert leases.device_holder(s, device_id) == run_id


def _job_on(engine: Engine, device_id: str) -> tuple[str, str, str]:
    with Session(engine) as s:
        run = Run(kind="install")
        s.add(run)
        s.flush()
        job = DeviceJob(run_id=run.id, device_id=device_id)
        s.add(job)
        s.commit()
        return job.id, device_id, run.id
