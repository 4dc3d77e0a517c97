"""Status, the run list and one run in detail, on SQLite and PostgreSQL; status over 10,000 devices."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from inventory import TargetingError
from orchestrator.reports import NOT_INSTALLED, ReportError, device_status, list_runs, show_run
from orchestrator.state.db import session_scope
from orchestrator.state.models import DeviceJob, Run, StepRun, utcnow
from tests.orchestrator import run_seed as seed


class _Queries:
    """Counts the statements an engine executes (the reports promise a fixed few, never one per device)."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._on)
        self.engine = engine

    def _on(self, *_a: object) -> None:
        self.count += 1

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on)


def test_status_of_10000_devices_is_complete_in_few_queries(engine: Engine) -> None:
    with session_scope(engine) as s:
        seed.many_devices(s, 10_000, groups=("fleet-a", "fleet-b"))
    q = _Queries(engine)
    try:
        with Session(engine) as s:
            report = device_status(s)
    finally:
        q.close()
    assert q.count <= 5
    assert len(report.devices) == 10_000
    assert report.devices[0].name == "fleet-00000" and report.devices[-1].name == "fleet-09999"
    total = {v: sum(c.get(v, 0) for c in report.versions_by_group.values()) for v in ("8.0.1.23", "8.0.2.5", NOT_INSTALLED)}
    assert total == {NOT_INSTALLED: 3334, "8.0.1.23": 3333, "8.0.2.5": 3333}
    assert set(report.versions_by_group) == {"fleet-a", "fleet-b"}
    assert report.connected == 3333
    d1 = report.devices[1]
    assert (d1.groups, d1.installed_version, d1.connected, d1.last_outcome) == (("fleet-b",), "8.0.1.23", False, "failed")
    assert d1.last_error == "HostUnreachable: connection refused"
    data = json.loads(json.dumps(report.as_json()))
    assert data["total"] == 10_000 and data["groups"]["fleet-a"][NOT_INSTALLED] == 1667


def test_status_filters_by_group_with_children_and_limit(engine: Engine) -> None:
    with session_scope(engine) as s:
        seed.group(s, "all")
        seed.group(s, "lab", parent="all")
        seed.device(s, "lab-01", ["lab"], cert=False)
        seed.device(s, "lab-02", ["lab"], cert=False)
        seed.device(s, "office-01", ["office"], cert=False)
    with Session(engine) as s:
        assert [d.name for d in device_status(s, ["all"]).devices] == ["lab-01", "lab-02"]
        assert [d.name for d in device_status(s, [], ["*-02"]).devices] == ["lab-02"]
        assert device_status(s, ["lab"]).versions_by_group == {"lab": {NOT_INSTALLED: 2}}
        with pytest.raises(TargetingError, match="unknown group"):
            device_status(s, ["nope"])


def _run_with_steps(engine: Engine) -> str:
    now = utcnow()
    with session_scope(engine) as s:
        a = seed.device(s, "mac-a", cert=False)
        b = seed.device(s, "mac-b", cert=False)
        run = Run(id="f00dfeed" + "0" * 24, kind="install", status="failed", created_by="ann",
                  params_json=json.dumps({"version": "8.0.2.5", "switch": "s.test:4000"}),
                  started_at=now, ended_at=now + timedelta(seconds=75))  # fmt: skip
        s.add(run)
        s.flush()
        ja = DeviceJob(run_id=run.id, device_id=a.id, status="succeeded", started_at=now, ended_at=now + timedelta(seconds=60))
        jb = DeviceJob(run_id=run.id, device_id=b.id, status="failed", current_step="install",
                       error_type="InstallFailed", error_message="installer: exit 1")  # fmt: skip
        s.add_all([ja, jb])
        s.flush()
        t = now
        for job, steps in ((ja, [("preflight", "ok"), ("install", "changed"), ("verify", "ok")]),
                           (jb, [("preflight", "ok"), ("install", "failed"), ("install", "failed")])):  # fmt: skip
            seen: dict[str, int] = {}
            for name, status in steps:
                seen[name] = seen.get(name, 0) + 1
                t += timedelta(milliseconds=10)
                s.add(StepRun(job_id=job.id, step=name, status=status, attempt=seen[name], started_at=t,
                              duration_ms=12, error_type="InstallFailed" if status == "failed" else None))  # fmt: skip
        s.add(StepRun(job_id=ja.id, step="rosetta", status="noop", noop_reason="Intel Mac", started_at=now + timedelta(milliseconds=15)))
        return run.id


def test_show_run_matrix_and_prefix(engine: Engine) -> None:
    run_id = _run_with_steps(engine)
    with Session(engine) as s:
        d = show_run(s, "f00d")
    assert d.run.id == run_id and d.run.counts == {"failed": 1, "succeeded": 1}
    assert d.params["version"] == "8.0.2.5"
    assert d.step_names == ["preflight", "rosetta", "install", "verify"]
    a, b = d.jobs
    assert a.device == "mac-a" and a.duration_s == 60.0
    assert a.steps["rosetta"].status == "noop" and a.steps["rosetta"].noop_reason == "Intel Mac"
    assert b.steps["install"].attempt == 2 and b.steps["install"].error_type == "InstallFailed"
    assert "verify" not in b.steps and b.error_message == "installer: exit 1"
    data = json.loads(json.dumps(d.as_json()))
    assert data["jobs"][1]["steps"]["install"]["status"] == "failed" and data["steps"][0] == "preflight"


def test_show_run_unknown_or_ambiguous(engine: Engine) -> None:
    with session_scope(engine) as s:
        s.add_all([Run(id="aa1", kind="install"), Run(id="aa2", kind="install")])
    with Session(engine) as s:
        with pytest.raises(ReportError, match="matches several runs"):
            show_run(s, "aa")
        with pytest.raises(ReportError, match="runs list"):
            show_run(s, "bb")


def test_list_runs_newest_first_with_counts(engine: Engine) -> None:
    run_id = _run_with_steps(engine)
    with session_scope(engine) as s:
        s.add(Run(id="later", kind="install", status="pending", created_at=utcnow() + timedelta(minutes=1)))
    with Session(engine) as s:
        rows = list_runs(s)
        assert [r.id for r in rows] == ["later", run_id]
        assert rows[0].counts == {} and rows[1].counts == {"failed": 1, "succeeded": 1} and rows[1].devices == 2
        assert [r.id for r in list_runs(s, limit=1)] == ["later"]
        assert rows[1].as_json()["created_by"] == "ann"

