"""The recorder's batches land exactly as queued: a step started and ended in one batch is one row, updates
with different column sets in one batch each touch only their row and columns, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from orchestrator.state.models import AuditEvent, Device, DeviceJob, Run, StepRun
from tests.orchestrator import run_seed as seed
from workers.runner.recorder import Recorder


async def test_batches_land_as_queued(engine: Engine) -> None:
    with Session(engine) as s:
        a, b = Device(name="mac-a", address="127.0.0.1"), Device(name="mac-b", address="127.0.0.1")
        run = Run(kind="install")
        s.add_all([a, b, run])
        s.flush()
        job_a, job_b = DeviceJob(run_id=run.id, device_id=a.id), DeviceJob(run_id=run.id, device_id=b.id)
        s.add_all([job_a, job_b])
        s.commit()
        ids = a.id, b.id, job_a.id, job_b.id
    dev_a, dev_b, ja, jb = ids

    rec = Recorder(engine, interval=0.05).start()
    facts = rec.step_started(ja, "facts", 1, '[["sw_vers"]]')
    rec.step_finished(facts, status="ok", exit_code=0, duration_ms=12)  # same batch: one insert
    push = rec.step_started(jb, "push", 2)
    await rec.flush()
    rec.step_finished(push, status="failed", exit_code=3, error_type="UploadError", output_tail="x")
    rec.job(ja, status="succeeded")
    rec.job(jb, status="failed", error_type="UploadError")
    rec.device(dev_a, connected=True, installed_version="8.0.2.5")
    rec.device(dev_b, last_error="push: UploadError")
    rec.device(dev_b, connected=False)  # merged with the line above
    await rec.close()
    assert rec.error is None and rec.commits == 2

    with Session(engine) as s:
        steps = {r.step: r for r in s.exec(select(StepRun)).all()}
        assert set(steps) == {"facts", "push"}
        f, p = steps["facts"], steps["push"]
        assert (f.job_id, f.status, f.exit_code, f.duration_ms, f.commands_json) == (
            ja, "ok", 0, 12, '[["sw_vers"]]'
        )
        assert f.ended_at is not None and f.started_at <= f.ended_at
        assert (p.job_id, p.attempt, p.status, p.exit_code, p.error_type, p.output_tail) == (
            jb, 2, "failed", 3, "UploadError", "x"
        )
        jobs = {j.id: j for j in s.exec(select(DeviceJob)).all()}
        assert jobs[ja].status == "succeeded" and jobs[ja].error_type is None
        assert jobs[jb].status == "failed" and jobs[jb].error_type == "UploadError"
        da, db = s.get(Device, dev_a), s.get(Device, dev_b)
        assert da is not None and db is not None
        assert (da.connected, da.installed_version, da.last_error) == (True, "8.0.2.5", None)
        assert (db.connected, db.installed_version, db.last_error) == (False, None, "push: UploadError")


async def test_audit_rows_and_calls_land_after_the_rows_queued_before_them(engine: Engine) -> None:
    """`audit` inserts with the model's defaults filled in; a `call` runs in the same transaction after
    what was queued before it (a job's lease is let go only with its last records)."""
    job_id, _, _ = seed.one_job(engine, "mac-a")
    seen: list[str] = []

    def let_go(session: Session) -> None:
        row = session.get(DeviceJob, job_id)
        assert row is not None
        seen.append(row.status)
        row.lease_owner = None
        session.add(row)
        session.flush()

    rec = Recorder(engine, interval=0.05).start()
    rec.job(job_id, status="succeeded", lease_owner="ctl-a")
    rec.audit("runner", "ca.added", '{"sha1": "ab"}')
    rec.call(let_go)
    await rec.close()
    assert rec.error is None and seen == ["succeeded"]
    with Session(engine) as s:
        row = s.get(DeviceJob, job_id)
        assert row is not None and (row.status, row.lease_owner) == ("succeeded", None)
        (event,) = s.exec(select(AuditEvent)).all()
        assert (event.actor, event.action, event.params_json, event.outcome) == (
            "runner", "ca.added", '{"sha1": "ab"}', "ok"
        )


async def test_a_flush_after_close_says_so_instead_of_waiting_forever(engine: Engine) -> None:
    rec = Recorder(engine, interval=0.05).start()
    await rec.close()
    rec.job("no-such-job", status="failed")
    try:
        await asyncio.wait_for(rec.flush(), 5)
    except RuntimeError as e:
        assert "closed" in str(e)
    else:
        raise AssertionError("a flush after close returned as if its rows were committed")
