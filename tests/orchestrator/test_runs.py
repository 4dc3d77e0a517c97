"""Run control (`orchestrator.runs`) on its own, on SQLite and PostgreSQL: the wave gate from SQL counts, the
final status and halt reason a driver's finish writes, and the halts recorded by hand and by a driver."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from orchestrator import runs
from orchestrator.state.db import session_scope
from orchestrator.state.models import DeviceJob, Run, RunStatus
from tests.orchestrator import run_seed as seed


def _run(engine: Engine, jobs: list[tuple[int, str]], max_failures: str | None = None) -> str:
    """A running run with one device job per (wave, status), devices mac-00, mac-01, ..."""
    with session_scope(engine) as s:
        seed.group(s, "lab")
        params = {"max_failures": max_failures} if max_failures is not None else {}
        run = Run(kind="install", status=RunStatus.RUNNING, params_json=json.dumps(params))
        s.add(run)
        s.flush()
        for i, (wave, status) in enumerate(jobs):
            d = seed.device(s, f"mac-{i:02d}", cert=False)
            s.add(DeviceJob(run_id=run.id, device_id=d.id, wave=wave, status=status, current_step="verify"))
        return run.id


def _status(engine: Engine, run_id: str) -> tuple[str, str | None]:
    with Session(engine) as s:
        run = s.get(Run, run_id)
        assert run is not None
        return run.status, run.halt_reason


def test_gate_waits_for_a_queued_wave_and_halts_naming_the_failed(engine: Engine) -> None:
    run_id = _run(engine, [(0, "failed"), (0, "queued"), (1, "pending")], max_failures="0")
    with Session(engine) as s:
        gate = runs.gate(s, run_id)
    # a job handed to a Celery worker is attempted: 1 of 2 failed crosses a threshold of 0
    assert gate.action == "halt"
    assert gate.reason.startswith("1 of 2 attempted device(s) failed")
    assert "(failed: mac-00)" in gate.reason


def test_gate_without_threshold_waits_on_queued_then_opens_the_next_wave(engine: Engine) -> None:
    run_id = _run(engine, [(0, "failed"), (0, "queued"), (1, "pending")])
    with Session(engine) as s:
        assert (runs.gate(s, run_id).action, runs.gate(s, run_id).wave) == ("wait", 0)
        job = s.exec(select(DeviceJob).where(DeviceJob.status == "queued")).one()
        job.status = "succeeded"
        s.add(job)
        s.flush()
        assert (runs.gate(s, run_id).action, runs.gate(s, run_id).wave) == ("open", 1)


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"halt": "too many failed"}, "halted: too many failed; 1 device(s) left untouched"),
        ({"halted_by": "halted by alice: stop"}, "halted by alice: stop"),
        ({"stopped": True}, "interrupted by the operator"),
        ({}, "1 device(s) could not be claimed (held by another controller?)"),
    ],
)
def test_finish_with_unfinished_jobs_halts_with_why_and_how_to_resume(
    engine: Engine, kwargs: dict[str, object], why: str
) -> None:
    run_id = _run(engine, [(0, "succeeded"), (0, "pending")])
    with session_scope(engine) as s:
        summary = runs.finish_run(s, run_id, **kwargs)  # type: ignore[arg-type]
    assert summary.status == RunStatus.HALTED
    assert _status(engine, run_id) == ("halted", f"{why}; resume with: orchestrate runs resume {run_id[:12]}")


def test_finish_when_every_job_is_done(engine: Engine) -> None:
    run_id = _run(engine, [(0, "succeeded"), (1, "failed")])
    with session_scope(engine) as s:
        summary = runs.finish_run(s, run_id)
    assert (summary.status, summary.counts) == ("failed", {"succeeded": 1, "failed": 1})
    assert summary.failed == [("mac-01", "verify", None, None)]
    with Session(engine) as s:
        run = s.get(Run, run_id)
        assert run is not None and run.ended_at is not None and run.halt_reason is None
        assert runs.settled(run)


def test_halts_by_hand_and_by_driver_and_what_the_watchers_see(engine: Engine) -> None:
    run_id = _run(engine, [(0, "pending")])
    with Session(engine) as s:
        assert runs.halted_by(s, run_id) is None
    with session_scope(engine) as s:
        runs.halt_run(s, run_id[:8], "alice", "maintenance")
    with Session(engine) as s:
        assert runs.halted_by(s, run_id) == "halted by alice: maintenance"
        run = s.get(Run, run_id)
        assert run is not None and not runs.settled(run)  # no resume hint yet: a driver still finishes it
    with session_scope(engine) as s, pytest.raises(runs.RunError, match="only a running or pending run"):
        runs.halt_run(s, run_id, "bob")
    with session_scope(engine) as s:
        job = s.exec(select(DeviceJob).where(DeviceJob.run_id == run_id)).one()
        job.status = "succeeded"  # the device mid-step finished it
        s.add(job)
        s.flush()
        assert runs.finish_run(s, run_id).status == "succeeded"
        runs.record_halt(s, run_id, "the broker could not be reached")  # ended: left as it is
    assert _status(engine, run_id) == ("succeeded", None)
