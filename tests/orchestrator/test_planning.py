"""Planning an install run (parameters, per-device refusals, persistence) and resuming a run, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from orchestrator.config import CertSettings, DeploySettings, Settings
from orchestrator.planning.plans import plan_lifecycle_run, plan_run
from orchestrator.planning.request import DeployRequest, PlanningError
from orchestrator.runs import RunError, find_run, resume_run
from orchestrator.state.db import session_scope
from orchestrator.state.models import (
    AuditEvent,
    Device,
    DeviceJob,
    DeviceLock,
    JobStatus,
    Run,
    RunStatus,
    utcnow,
)
from tests.orchestrator import run_seed as seed

SWITCH = "tachyon.lab.test:4000"
URL = "https://tachyon.lab.test:443/Background/"
PARAM_KEYS = {"version", "switch", "background_url", "artifact_sha256", "method", "expected_team_id",
              "cache_dmg", "verify_timeout", "ca_sha256s", "name_rule", "trust_mode"}  # fmt: skip


def settings(**deploy: object) -> Settings:
    return Settings(deploy=DeploySettings(**deploy))  # type: ignore[arg-type]


def req(**kw: object) -> DeployRequest:
    kw.setdefault("groups", ["lab"])
    kw.setdefault("limits", [])
    return DeployRequest(**kw)  # type: ignore[arg-type]


@pytest.fixture
def lab(engine: Engine) -> Engine:
    """Three good devices in group lab, DMGs 8.0.1.23 and 8.0.2.5, one CA."""
    with session_scope(engine) as s:
        seed.group(s, "lab")
        for n in ("mac-01", "mac-02", "mac-03"):
            seed.device(s, n)
        seed.artifact(s, "8.0.1.23")
        seed.artifact(s, "8.0.2.5", size=30_000_000)
        seed.ca(s)
    return engine


def plan(engine: Engine, request: DeployRequest, st: Settings | None = None, persist: bool = False):  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return plan_run(s, st or settings(switch=SWITCH, background_url=URL), request, "tester",
                                persist=persist)  # fmt: skip


# ---------------------------------------------------------------- parameters


def test_params_from_config_with_newest_version(lab: Engine) -> None:
    p = plan(lab, req())
    assert set(p.params) == PARAM_KEYS
    assert p.params["switch"] == SWITCH and p.params["background_url"] == URL
    assert p.params["version"] == "8.0.2.5"  # newest in the store when nothing names one
    assert p.params["method"] == "install.sh" and p.params["expected_team_id"] is None
    # no free-space floor of its own: tasks/install/decide.py counts the DMG and margin once (issue 12)
    assert "min_free_bytes" not in p.params
    assert p.params["cache_dmg"] is False and p.params["verify_timeout"] == 120.0
    assert len(p.params["ca_sha256s"]) == 1
    assert p.run_id is None and len(p.device_ids) == 3 and p.refused == {}
    json.dumps(p.params)  # storable as is


def test_flag_beats_group_var_beats_config(lab: Engine) -> None:
    with session_scope(lab) as s:
        seed.group(s, "lab", {"switch": "group.test:4000", "client_version": "8.0.1.23"})
    p = plan(lab, req())
    assert p.params["switch"] == "group.test:4000" and p.params["version"] == "8.0.1.23"
    p = plan(lab, req(switch="flag.test:4001", version="8.0.2.5"))
    assert p.params["switch"] == "flag.test:4001" and p.params["version"] == "8.0.2.5"


def test_child_group_overrides_parent_and_disagreeing_groups_are_refused(lab: Engine) -> None:
    with session_scope(lab) as s:
        seed.group(s, "all", {"switch": "parent.test:4000"})
        seed.group(s, "lab", parent="all")
        seed.group(s, "east", {"switch": "east.test:4000"}, parent="all")
        seed.device(s, "east-01", ["east"])
    assert plan(lab, req()).params["switch"] == "parent.test:4000"  # lab inherits from all
    assert plan(lab, req(groups=["east"])).params["switch"] == "east.test:4000"  # the child wins
    with pytest.raises(PlanningError, match=r"disagree on switch.*--switch"):
        plan(lab, req(groups=["lab", "east"]))
    assert plan(lab, req(groups=["lab", "east"], switch="x.test:1")).params["switch"] == "x.test:1"


def test_switch_and_url_lists_are_normalized(lab: Engine) -> None:
    p = plan(lab, req(switch="a.test:4000, b.test:4000", background_url=f"{URL},https://b.test/Background/"))
    assert p.params["switch"] == "a.test:4000;b.test:4000"
    assert p.params["background_url"] == f"{URL};https://b.test/Background/"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"switch": "tachyon.lab.test"}, r"Switch \(HOST:PORT\) 'tachyon.lab.test' is not valid"),
        ({"switch": "tachyon.lab.test:99999"}, "is not valid"),
        ({"background_url": "http://tachyon.lab.test/Background/"}, r"URL \(https\) 'http://tachyon.lab.test/Background/' is not valid"),
        ({"version": "9.9"}, r"no DMG for version 9\.9: orchestrate artifact add"),
        ({"method": "brew"}, "install method"),
        ({"expected_team_id": "lower"}, "team id"),
        ({"groups": ["nope"]}, "unknown group"),
        ({"limits": ["zz*"]}, "no device matches"),
    ],
)
def test_bad_parameters_are_refused_with_advice(lab: Engine, kw: dict[str, object], message: str) -> None:
    with pytest.raises(PlanningError, match=message):
        plan(lab, req(**kw))


def test_missing_switch_or_url_names_flag_and_config_key(lab: Engine) -> None:
    with pytest.raises(PlanningError, match=r"--switch.*`switch` under \[deploy\]"):
        plan(lab, req(), settings(background_url=URL))
    with pytest.raises(PlanningError, match=r"--background-url.*`background_url` under \[deploy\]"):
        plan(lab, req(), settings(switch=SWITCH))


def test_empty_store_says_to_add_a_dmg(engine: Engine) -> None:
    with session_scope(engine) as s:
        seed.device(s, "mac-01")
    with pytest.raises(PlanningError, match="orchestrate artifact add"):
        plan(engine, req())


# ---------------------------------------------------------------- live names (inventory probe)


def _live(d: object, hostname: str, local: str, host_name: str | None) -> None:
    d.facts_json = json.dumps(  # type: ignore[attr-defined]
        {"hostname": hostname, "local_host_name": local, "host_name": host_name, "computer_name": local}
    )
    d.reported_hostname = hostname  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("rule", "refused"),
    [
        ("either", {"dhcp-named"}),
        ("sharing", {"host-named", "dhcp-named"}),
        ("hostname", {"sharing-named"}),
    ],
)
def test_live_names_under_each_name_rule(lab: Engine, rule: str, refused: set[str]) -> None:
    """A probed Mac is judged on its live names: the Sharing-pane name (LocalHostName.local) and, under
    `either`, `hostname` only where HostName is set (a DHCP name is accepted by the `hostname` rule alone)."""
    with session_scope(lab) as s:
        a = seed.device(s, "sharing-named", cert_names=["Lab-A.local"], declared=False)
        _live(a, "a.corp.example", "Lab-A", "a.corp.example")
        b = seed.device(s, "host-named", cert_names=["b.corp.example"], declared=False)
        _live(b, "b.corp.example", "Lab-B", "b.corp.example")
        c = seed.device(s, "dhcp-named", cert_names=["host-9.dhcp.example"], declared=False)
        _live(c, "host-9.dhcp.example", "Lab-C", None)
    deploy = DeploySettings(switch=SWITCH, background_url=URL)
    st = Settings(deploy=deploy, certs=CertSettings(name_rule=rule))  # type: ignore[arg-type]
    p = plan(lab, req(limits=["sharing-named", "host-named", "dhcp-named"]), st)
    assert p.params["name_rule"] == rule
    assert set(p.refused) == refused
    assert all(t == "HostnameMismatch" for t, _m in p.refused.values())
    if rule == "either":
        assert "name_rule = hostname" in p.refused["dhcp-named"][1]  # says which setting would accept it


# ---------------------------------------------------------------- refusals


def test_each_offline_refusal(lab: Engine) -> None:
    with session_scope(lab) as s:
        seed.device(s, "nocert", cert=False)
        seed.device(s, "wrongcase", cert_names=["WrongCase.local"], hostname="wrongcase.local")
        seed.device(s, "other", cert_names=["elsewhere.local"])
        seed.device(s, "san", cert_names=["cn-only", "san.local"])  # a SAN name is enough
        seed.device(s, "expired", not_after=utcnow() - timedelta(days=1))
        seed.device(s, "undeclared", cert_names=["mac-x.corp.example"], declared=False)  # runner checks it
        reported = seed.device(s, "reported", cert_names=["reported.local"])
        reported.reported_hostname = "Reported.local"  # what the Mac said wins over the inventory
    p = plan(lab, req())
    types = {n: t for n, (t, _m) in p.refused.items()}
    assert types == {"nocert": "NoCertificate", "wrongcase": "HostnameMismatch", "other": "HostnameMismatch",
                     "expired": "CertificateExpired", "reported": "HostnameMismatch"}  # fmt: skip
    assert "orchestrate certs add" in p.refused["nocert"][1]
    assert "only the case differs" in p.refused["wrongcase"][1]
    assert "'wrongcase.local'" in p.refused["wrongcase"][1]
    assert "only the case" not in p.refused["other"][1]
    assert len(p.device_ids) == 5  # mac-01..03, san, undeclared


def test_device_locked_by_another_run_is_busy(lab: Engine) -> None:
    first = plan(lab, req(), persist=True)
    with session_scope(lab) as s:
        d = s.exec(select(Device).where(Device.name == "mac-02")).one()
        s.add(DeviceLock(device_id=d.id, run_id=first.run_id, owner="ctl", expires_at=utcnow() + timedelta(minutes=5)))
        d3 = s.exec(select(Device).where(Device.name == "mac-03")).one()  # an expired lock does not count
        s.add(DeviceLock(device_id=d3.id, run_id=first.run_id, owner="ctl", expires_at=utcnow() - timedelta(minutes=5)))
    p = plan(lab, req())
    assert list(p.refused) == ["mac-02"]
    etype, msg = p.refused["mac-02"]
    assert etype == "DeviceBusy" and first.run_id is not None and first.run_id in msg


def test_a_lifecycle_plan_refuses_held_devices_reading_the_locks_once(lab: Engine) -> None:
    """uninstall/reconfigure/service plans: a device another run holds is refused (DeviceBusy), an expired
    lock does not count, and the locks are read in one query whatever the fleet's size."""
    first = plan(lab, req(), persist=True)
    with session_scope(lab) as s:
        d = s.exec(select(Device).where(Device.name == "mac-02")).one()
        s.add(DeviceLock(device_id=d.id, run_id=first.run_id, owner="ctl", expires_at=utcnow() + timedelta(minutes=5)))
        d3 = s.exec(select(Device).where(Device.name == "mac-03")).one()
        s.add(DeviceLock(device_id=d3.id, run_id=first.run_id, owner="ctl", expires_at=utcnow() - timedelta(minutes=5)))
    lock_reads: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "devicelock" in statement.lower():
            lock_reads.append(statement)

    event.listen(lab, "before_cursor_execute", count)
    try:
        with session_scope(lab) as s:
            p = plan_lifecycle_run(s, settings(), "restart", ["lab"], [], {}, "test")
    finally:
        event.remove(lab, "before_cursor_execute", count)
    assert list(p.refused) == ["mac-02"] and p.refused["mac-02"][0] == "DeviceBusy"
    assert first.run_id is not None and first.run_id[:12] in p.refused["mac-02"][1]
    assert len(lock_reads) == 1, lock_reads


# ---------------------------------------------------------------- persistence


def test_persisted_run_jobs_refusals_and_audit(lab: Engine) -> None:
    with session_scope(lab) as s:
        seed.device(s, "nocert", cert=False)
    p = plan(lab, req(), persist=True)
    assert p.run_id is not None
    with Session(lab) as s:
        run = s.get(Run, p.run_id)
        assert run is not None
        assert (run.kind, run.status, run.executor, run.created_by) == ("install", "pending", "local", "tester")
        assert json.loads(run.params_json) == p.params
        jobs = s.exec(select(DeviceJob, Device).where(DeviceJob.run_id == run.id, DeviceJob.device_id == Device.id)).all()
        by_name = {d.name: j for j, d in jobs}
        assert set(by_name) == {"mac-01", "mac-02", "mac-03", "nocert"}
        assert {by_name[n].status for n in ("mac-01", "mac-02", "mac-03")} == {JobStatus.PENDING}
        bad = by_name["nocert"]
        assert (bad.status, bad.error_type) == (JobStatus.FAILED, "NoCertificate")
        dev = s.exec(select(Device).where(Device.name == "nocert")).one()
        assert dev.last_run_id == run.id and dev.last_error and dev.last_error.startswith("NoCertificate")
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "deploy.plan")).one()
        audit = json.loads(ev.params_json)
        assert audit["run_id"] == run.id and audit["refused"] == {"nocert": "NoCertificate"}


def test_dry_run_writes_nothing(lab: Engine) -> None:
    plan(lab, req(), persist=False)
    with Session(lab) as s:
        assert s.exec(select(Run)).all() == []
        assert s.exec(select(AuditEvent)).all() == []


# ---------------------------------------------------------------- resume


def _set_jobs(engine: Engine, run_id: str, statuses: list[tuple[str, object]]) -> None:
    with session_scope(engine) as s:
        jobs = sorted(s.exec(select(DeviceJob).where(DeviceJob.run_id == run_id)).all(), key=lambda j: j.id)
        for j, (status, lease) in zip(jobs, statuses, strict=False):
            j.status = status
            j.lease_owner = "ctl-1" if lease else None
            j.lease_expires_at = lease  # type: ignore[assignment]
        run = s.get(Run, run_id)
        assert run is not None
        run.status = RunStatus.HALTED


def test_resume_puts_unfinished_jobs_back_to_pending(lab: Engine) -> None:
    with session_scope(lab) as s:
        seed.device(s, "mac-04")
    p = plan(lab, req(), persist=True)
    assert p.run_id is not None
    _set_jobs(lab, p.run_id, [("succeeded", None), ("interrupted", None),
                              ("running", utcnow() - timedelta(seconds=1)), ("pending", None)])  # fmt: skip
    with session_scope(lab) as s:
        run = resume_run(s, p.run_id[:10], "tester")
        assert run.status == RunStatus.RUNNING
    with Session(lab) as s:
        statuses = sorted(j.status for j in s.exec(select(DeviceJob).where(DeviceJob.run_id == p.run_id)).all())
        assert statuses == ["pending", "pending", "pending", "succeeded"]
        assert all(j.lease_owner is None for j in s.exec(select(DeviceJob)).all() if j.status == "pending")
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "runs.resume")).one()


def test_resume_keeps_a_live_lease_for_the_driver_to_wait_out(lab: Engine) -> None:
    p = plan(lab, req(), persist=True)
    assert p.run_id is not None
    until = utcnow() + timedelta(minutes=1)
    _set_jobs(lab, p.run_id, [("running", until)])
    with session_scope(lab) as s:
        resume_run(s, p.run_id, "tester")
    with Session(lab) as s:
        job = s.exec(select(DeviceJob).where(DeviceJob.run_id == p.run_id, DeviceJob.lease_owner == "ctl-1")).first()
        assert job is not None
        # still running under its holder's lease: the driver's claim waits for it to expire
        assert (job.status, job.lease_owner, job.lease_expires_at) == ("running", "ctl-1", until)


def test_resume_of_a_threshold_halt_retries_the_failed_devices(lab: Engine) -> None:
    p = plan(lab, req(), persist=True)
    assert p.run_id is not None
    _set_jobs(lab, p.run_id, [("failed", None)])
    with session_scope(lab) as s:
        run = s.get(Run, p.run_id)
        assert run is not None
        run.status, run.halt_reason = RunStatus.HALTED, "halted: 1 of 1 attempted device(s) failed"
    with session_scope(lab) as s:
        resume_run(s, p.run_id, "tester")
    with Session(lab) as s:
        statuses = {j.status for j in s.exec(select(DeviceJob).where(DeviceJob.run_id == p.run_id)).all()}
        assert "failed" not in statuses


@pytest.mark.parametrize("status", [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED])
def test_resume_refuses_a_finished_run(lab: Engine, status: RunStatus) -> None:
    p = plan(lab, req(), persist=True)
    with session_scope(lab) as s:
        run = s.get(Run, p.run_id)
        assert run is not None
        run.status = status
    with session_scope(lab) as s, pytest.raises(RunError, match=f"has finished \\({status}\\); nothing to resume"):
        resume_run(s, str(p.run_id), "tester")


def test_run_prefix_unknown_and_ambiguous(lab: Engine) -> None:
    with session_scope(lab) as s:
        s.add(Run(id="abc111", kind="install"))
        s.add(Run(id="abc222", kind="install"))
    with Session(lab) as s:
        assert find_run(s, "abc1").id == "abc111"
        assert find_run(s, "ABC2").id == "abc222"
        with pytest.raises(RunError, match="matches several runs"):
            find_run(s, "abc")
        with pytest.raises(RunError, match="no run has an id starting with 'zz'"):
            find_run(s, "zz")
        with pytest.raises(RunError, match="no run has an id starting with"):
            find_run(s, "a%")
