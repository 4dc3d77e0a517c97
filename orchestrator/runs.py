"""Run control: every change of a run's status, for the CLI, the local driver and the Celery tasks alike.

A run is planned PENDING (`orchestrator.planning`); from then on only this module writes its status:
- `start_run`: a driver takes it up (RUNNING);
- `gate`: the wave gate, from the job counts in SQL and `waves.decide` (so it survives a restart);
- `finish_run`: the run's final status (or halt reason) from its jobs, once no device is worked on;
- `halt_run` (by an operator) and `record_halt` (by a driver that cannot go on): HALTED, resumable;
- `resume_run`, `retry_failed`: put jobs back to pending for a driver;
- `find_run`: a run by id or unique id prefix; `halted_by`: the one halt check the drivers' watchers poll.

Functions take a Session and leave the commit to the caller.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, col, select

from orchestrator import audit
from orchestrator.state.models import Device, DeviceJob, JobStatus, Run, RunStatus, utcnow
from orchestrator.waves import FINISHED_BAD, GateDecision, Threshold, decide, parse_threshold

__all__ = [
    "RESUME_HINT",
    "RunError",
    "RunSummary",
    "find_run",
    "finish_run",
    "gate",
    "halt_run",
    "halted_by",
    "record_halt",
    "resume_run",
    "retry_failed",
    "settled",
    "start_run",
    "wave_counts",
]

RESUME_HINT = "resume with: orchestrate runs resume"


class RunError(ValueError):
    """The run cannot be found, halted, resumed or retried; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class RunSummary:
    """A run's status after `finish_run`, its jobs counted by status, and the failed devices."""

    run_id: str
    status: str
    counts: dict[str, int]
    failed: list[tuple[str, str | None, str | None, str | None]]  # (device, step, error_type, message)


def find_run(session: Session, run_id_or_prefix: str) -> Run:
    """The run with this id, or the one run whose id starts with this prefix (like git).

    Raises RunError (LookupError semantics) for an unknown or ambiguous prefix."""
    ref = run_id_or_prefix.strip().lower()
    if not ref:
        raise RunError("give a run id (see `orchestrate runs list`)")
    run = session.get(Run, ref)
    if run is not None:
        return run
    escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    hits = session.exec(select(Run).where(col(Run.id).like(escaped + "%", escape="\\")).limit(6)).all()
    if not hits:
        raise RunError(f"no run has an id starting with {run_id_or_prefix!r}: see `orchestrate runs list`")
    if len(hits) > 1:
        shown = ", ".join(r.id[:12] for r in hits[:5])
        raise RunError(
            f"{run_id_or_prefix!r} matches several runs ({shown}{', ...' if len(hits) > 5 else ''}): "
            "give more characters of the id"
        )
    return hits[0]


# ---------------------------------------------------------------- a driver's run


def start_run(session: Session, run_id: str, *, executor: str | None = None) -> Run:
    """Mark the run running (first start, or again after `runs resume`); executor: record the driver."""
    run = session.get(Run, run_id)
    if run is None:
        raise KeyError(run_id)
    run.status = RunStatus.RUNNING.value
    if executor is not None:
        run.executor = executor
    run.started_at = run.started_at or utcnow()
    run.ended_at = None
    run.halt_reason = None
    session.add(run)
    return run


def wave_counts(session: Session, run_id: str) -> dict[int, Counter[str]]:
    """Wave index -> {job status: count}, in one query."""
    rows = session.exec(
        select(DeviceJob.wave, DeviceJob.status, func.count())
        .where(DeviceJob.run_id == run_id)
        .group_by(col(DeviceJob.wave), col(DeviceJob.status))
    ).all()
    out: dict[int, Counter[str]] = {}
    for wave, status, n in rows:
        out.setdefault(wave, Counter())[status] += n
    return out


def gate(session: Session, run_id: str, counts: dict[int, Counter[str]] | None = None) -> GateDecision:
    """The wave gate from the database: the run's `max_failures` over its job counts (`waves.decide`).
    A halt's reason names the failed devices."""
    counts = wave_counts(session, run_id) if counts is None else counts
    run = session.get(Run, run_id)
    params = json.loads(run.params_json) if run is not None else {}
    limit = params.get("max_failures")
    total = sum(sum(c.values()) for c in counts.values())
    threshold = parse_threshold(str(limit)) if limit not in (None, "") else Threshold(count=total + 1)
    decision = decide(counts, threshold)
    if decision.action != "halt":
        return decision
    failed = session.exec(
        select(Device.name)
        .where(DeviceJob.run_id == run_id, DeviceJob.device_id == Device.id,
               col(DeviceJob.status).in_(FINISHED_BAD))
        .order_by(col(Device.name))
    ).all()  # fmt: skip
    return decide(counts, threshold, list(failed))


def finish_run(
    session: Session,
    run_id: str,
    *,
    stopped: bool = False,
    halt: str | None = None,
    halted_by: str | None = None,
) -> RunSummary:
    """Write the run's outcome from its jobs, once its driver works on none of them: succeeded or failed
    when every job is done, else halted with why (halt: the gate's reason; halted_by: a halt recorded on
    the run; stopped: the operator interrupted the driver) and how to resume."""
    rows = session.exec(
        select(DeviceJob, Device).where(DeviceJob.run_id == run_id, DeviceJob.device_id == Device.id)
    ).all()
    counts = Counter(j.status for j, _ in rows)
    failed = sorted(
        (dev.name, j.current_step, j.error_type, j.error_message)
        for j, dev in rows
        if j.status == JobStatus.FAILED.value
    )
    run = session.get(Run, run_id)
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
        run.halt_reason = f"{why}; {RESUME_HINT} {run_id[:12]}"
    else:
        run.status = RunStatus.FAILED.value if failed else RunStatus.SUCCEEDED.value
        run.halt_reason = None
        run.ended_at = utcnow()
    session.add(run)
    return RunSummary(run_id, run.status, dict(counts), failed)


def settled(run: Run) -> bool:
    """Nothing more to do for the run: it ended, or a halt was recorded with the resume hint."""
    if run.status in RunStatus.ended():
        return True
    return run.status != RunStatus.RUNNING.value and RESUME_HINT in (run.halt_reason or "")


def halted_by(session: Session, run_id: str) -> str | None:
    """Why the run was halted when it is (`runs halt`, a driver's `record_halt`), else None: what the
    drivers' halt watchers poll to stop starting devices."""
    run = session.get(Run, run_id)
    if run is None or run.status != RunStatus.HALTED.value:
        return None
    return run.halt_reason or "halted by hand"


def record_halt(session: Session, run_id: str, why: str) -> None:
    """A driver cannot go on (e.g. the broker is unreachable): record the run halted with why and how to
    resume, unless it already ended."""
    run = session.get(Run, run_id)
    if run is None or run.status in RunStatus.ended():
        return
    run.status = RunStatus.HALTED.value
    run.halt_reason = f"{why}; {RESUME_HINT} {run_id[:12]}"
    session.add(run)


# ---------------------------------------------------------------- the operator's commands


def halt_run(session: Session, run_id: str, actor: str, reason: str | None = None) -> Run:
    """Mark a running run halted: its drivers stop starting devices (devices mid-step finish that step).
    Raises RunError for a run that is not running or pending."""
    run = find_run(session, run_id)
    if run.status not in (RunStatus.RUNNING, RunStatus.PENDING):
        raise RunError(f"run {run.id[:12]} is {run.status}; only a running or pending run can be halted")
    run.status = RunStatus.HALTED
    run.halt_reason = f"halted by {actor}" + (f": {reason}" if reason else "")
    session.add(run)
    audit.record(session, actor, "runs.halt", {"run_id": run.id, "reason": reason})
    return run


def retry_failed(session: Session, run_id: str, actor: str) -> tuple[Run, list[str]]:
    """Put the run's failed devices (not refused-at-planning ones) back to pending; returns (run, their job
    ids) for the driver to run those and no others. Raises RunError when nothing failed."""
    run = find_run(session, run_id)
    jobs = session.exec(
        select(DeviceJob).where(DeviceJob.run_id == run.id, DeviceJob.status == JobStatus.FAILED)
    ).all()
    again = [j for j in jobs if j.current_step != "plan"]
    if not again:
        raise RunError(f"run {run.id[:12]} has no failed device to retry")
    for j in again:
        j.status = JobStatus.PENDING
        j.error_type = j.error_message = None
        j.lease_owner, j.lease_expires_at, j.ended_at = None, None, None
        session.add(j)
    run.status, run.halt_reason, run.ended_at = RunStatus.HALTED, None, None
    session.add(run)
    audit.record(session, actor, "runs.retry", {"run_id": run.id, "devices": len(again)})
    return run, [j.id for j in again]


def resume_run(session: Session, run_id: str, actor: str) -> Run:
    """Make a stopped run resumable: its unfinished jobs (pending, interrupted, running) go back to pending
    and the run to running; when the run was halted by its failure threshold, its failed jobs are retried
    too (the operator fixed the cause; if they fail again, the gate halts the run again). Steps that
    completed are not repeated: the runner re-probes each Mac and re-plans (a finished step plans a no-op).

    A job still under a live lease (a controller killed a moment ago, or one still running) keeps its lease:
    the driver waits for it to expire before taking the job over, so two controllers never work on one
    device. Raises RunError for an unknown or a finished run (succeeded, failed, cancelled)."""
    run = find_run(session, run_id)
    if run.status in RunStatus.ended():
        raise RunError(
            f"run {run.id[:12]} has finished ({run.status}); nothing to resume: start a new run "
            "(`orchestrate deploy ...`) or retry its failed devices (`orchestrate runs retry "
            f"{run.id[:12]} --failed`)"
        )
    now = utcnow()
    by_threshold = run.status == RunStatus.HALTED and (run.halt_reason or "").startswith("halted:")
    jobs = session.exec(select(DeviceJob).where(DeviceJob.run_id == run.id)).all()
    reset = 0
    for j in jobs:
        live = j.lease_expires_at is not None and j.lease_expires_at > now
        retry = by_threshold and j.status == JobStatus.FAILED
        if j.status in JobStatus.unfinished() or retry:
            j.status = JobStatus.RUNNING if live and j.status == JobStatus.RUNNING else JobStatus.PENDING
            if not live:
                j.lease_owner, j.lease_expires_at = None, None
            if retry:
                j.error_type = j.error_message = None
                j.ended_at = None
            session.add(j)
            reset += 1
    run.status = RunStatus.RUNNING
    run.halt_reason = None
    run.ended_at = None
    session.add(run)
    session.flush()
    audit.record(session, actor, "runs.resume", {"run_id": run.id, "jobs_resumed": reset})
    return run
