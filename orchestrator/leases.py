"""Leases: who may work on a device job right now, and which run holds a device.

Every claim is one conditional UPDATE (compare-and-set on owner and expiry), so two drivers — a resumed
controller and a redelivered Celery task, say — can never both hold a job: the loser's UPDATE matches no
row. A holder renews its leases while it works; a crashed holder's lease simply expires and the job can be
claimed again (by `runs resume` or a redelivered task), which re-probes the Mac before re-running a step.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from orchestrator.state.models import DeviceJob, DeviceLock, JobStatus, UtcDateTime, utcnow


def claim_job(
    session: Session, job_id: str, owner: str, ttl: float, now: datetime | None = None, *, commit: bool = True
) -> bool:
    """Take the job's lease for `owner` for `ttl` seconds; True when taken.

    Succeeds when the job is unfinished and its lease is free, expired, or already `owner`'s. Marks the job
    running, counts the attempt and stamps its first start. Commits unless told not to."""
    now = now or utcnow()
    params = {"job_id": job_id, "owner": owner, "now": now, "expires": now + timedelta(seconds=ttl)}
    taken = session.connection().execute(_claim_statement(), params).rowcount == 1
    if commit:
        session.commit()
    return bool(taken)


@cache
def _claim_statement() -> Any:
    """claim_job's compare-and-set, built once (building a statement costs more CPU than running it)."""
    now = bindparam("now", type_=UtcDateTime())
    return (
        update(DeviceJob)
        .where(
            and_(
                col(DeviceJob.id) == bindparam("job_id"),
                col(DeviceJob.status).in_(JobStatus.unfinished()),
                or_(
                    col(DeviceJob.lease_owner).is_(None),
                    col(DeviceJob.lease_owner) == bindparam("owner"),
                    col(DeviceJob.lease_expires_at) < now,
                ),
            )
        )
        .values(
            lease_owner=bindparam("owner"),
            lease_expires_at=bindparam("expires", type_=UtcDateTime()),
            status=JobStatus.RUNNING.value,
            attempts=DeviceJob.attempts + 1,
            # bound as the column's type, so the stamp is stored as every other timestamp is
            started_at=func.coalesce(col(DeviceJob.started_at), now),
        )
    )


def claim_device_job(
    session: Session, job_id: str, device_id: str, run_id: str, owner: str, ttl: float
) -> str | None:
    """The job's lease and its device's lock for `owner`, in ONE transaction: None when both are taken
    (committed); else why not: "done" (the job is finished), "leased" (another holder's live lease), or
    "busy:RUN" (another run holds the device; the transaction is rolled back, so the job is not claimed)."""
    if not claim_job(session, job_id, owner, ttl, commit=False):
        session.rollback()
        job = session.get(DeviceJob, job_id)
        return "done" if job is None or job.status not in JobStatus.unfinished() else "leased"
    if not lock_device(session, device_id, run_id, owner, ttl, commit=False):  # rolled back
        return f"busy:{device_holder(session, device_id)}"
    session.commit()
    return None


def renew_jobs(session: Session, job_ids: Sequence[str], owner: str, ttl: float) -> set[str]:
    """Extend `owner`'s leases on job_ids; returns the ids still held (a lost lease stays lost). Commits."""
    if not job_ids:
        return set()
    now = utcnow()
    session.exec(
        update(DeviceJob)
        .where(and_(col(DeviceJob.id).in_(list(job_ids)), col(DeviceJob.lease_owner) == owner))
        .values(lease_expires_at=now + timedelta(seconds=ttl))
    )
    session.commit()
    held = session.exec(
        select(DeviceJob.id).where(col(DeviceJob.id).in_(list(job_ids)), col(DeviceJob.lease_owner) == owner)
    ).all()
    return set(held)


def release_job(session: Session, job_id: str, owner: str, *, commit: bool = True) -> None:
    """End `owner`'s lease on the job now (the owner stays on record), so a resume can claim it at once.
    Commits unless told not to."""
    params = {"job_id": job_id, "owner": owner, "expires": utcnow() - timedelta(seconds=1)}
    session.connection().execute(_release_statement(), params)
    if commit:
        session.commit()


@cache
def _release_statement() -> Any:
    return (
        update(DeviceJob)
        .where(
            and_(col(DeviceJob.id) == bindparam("job_id"), col(DeviceJob.lease_owner) == bindparam("owner"))
        )
        .values(lease_expires_at=bindparam("expires", type_=UtcDateTime()))
    )


def holds_job(session: Session, job_id: str, owner: str) -> bool:
    row = session.get(DeviceJob, job_id)
    return row is not None and row.lease_owner == owner


def lock_device(
    session: Session,
    device_id: str,
    run_id: str,
    owner: str,
    ttl: float,
    now: datetime | None = None,
    *,
    commit: bool = True,
) -> bool:
    """Hold the device for run_id (at most one active run per device); True when held. Commits unless told
    not to; a refusal rolls the session's transaction back (with commit=False, the caller's writes too).

    Taken when free, expired, or already held for the same run (a resumed run takes its own lock back)."""
    now = now or utcnow()
    expires = now + timedelta(seconds=ttl)
    params = {"b_device_id": device_id, "b_run_id": run_id, "b_owner": owner, "b_now": now,
              "b_expires_at": expires}  # fmt: skip
    conn = session.connection()
    moved = conn.execute(_lock_statement(), params).rowcount
    try:
        if moved != 1:  # no row yet: the insert races any other claimant's (the primary key decides)
            conn.execute(_insert_lock_statement(), params)
        if commit:
            session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


@cache
def _lock_statement() -> Any:
    return (
        update(DeviceLock)
        .where(
            and_(
                col(DeviceLock.device_id) == bindparam("b_device_id"),
                or_(
                    col(DeviceLock.run_id) == bindparam("b_run_id"),
                    col(DeviceLock.expires_at) < bindparam("b_now", type_=UtcDateTime()),
                ),
            )
        )
        .values(
            run_id=bindparam("b_run_id"), owner=bindparam("b_owner"),
            expires_at=bindparam("b_expires_at", type_=UtcDateTime()),
        )
    )


@cache
def _insert_lock_statement() -> Any:
    return insert(DeviceLock).values(
        device_id=bindparam("b_device_id"), run_id=bindparam("b_run_id"), owner=bindparam("b_owner"),
        expires_at=bindparam("b_expires_at", type_=UtcDateTime()),
    )  # fmt: skip


def renew_devices(session: Session, device_ids: Sequence[str], run_id: str, ttl: float) -> None:
    if not device_ids:
        return
    session.exec(
        update(DeviceLock)
        .where(and_(col(DeviceLock.device_id).in_(list(device_ids)), col(DeviceLock.run_id) == run_id))
        .values(expires_at=utcnow() + timedelta(seconds=ttl))
    )
    session.commit()


def unlock_device(session: Session, device_id: str, run_id: str, *, commit: bool = True) -> None:
    """Release the device if run_id holds it. Commits unless told not to."""
    session.connection().execute(_unlock_statement(), {"b_device_id": device_id, "b_run_id": run_id})
    if commit:
        session.commit()


@cache
def _unlock_statement() -> Any:
    return delete(DeviceLock).where(
        and_(
            col(DeviceLock.device_id) == bindparam("b_device_id"),
            col(DeviceLock.run_id) == bindparam("b_run_id"),
        )
    )


def live_locks(session: Session, device_ids: Collection[str], now: datetime) -> dict[str, DeviceLock]:
    """The device locks of `device_ids` that have not expired, by device id: one query for a whole plan
    (the live locks are the devices some run is working on now, never the fleet)."""
    wanted = set(device_ids)
    rows = session.exec(select(DeviceLock).where(col(DeviceLock.expires_at) >= now)).all()
    return {lk.device_id: lk for lk in rows if lk.device_id in wanted}


def device_holder(session: Session, device_id: str, now: datetime | None = None) -> str | None:
    """The run id holding the device now, or None."""
    now = now or utcnow()
    lock = session.get(DeviceLock, device_id)
    if lock is None or lock.expires_at < now:
        return None
    return lock.run_id
