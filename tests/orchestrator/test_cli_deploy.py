"""`orchestrate deploy`, `status` and `runs` in-process (typer's CliRunner) on SQLite and PostgreSQL.

Planning refusals and the reports need no SSH; the end-to-end deploy against a macsim fleet is in
`test_deploy_e2e` below (it runs the real local driver)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

import orchestrator.cli as cli
from orchestrator.state.db import create_db_engine, init_schema, session_scope
from orchestrator.state.models import DeviceJob, Run
from tests.orchestrator import run_seed as seed

URL = "https://tachyon.lab.test:443/Background/"


@pytest.fixture
def env(orchestrate_env: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("ORCHESTRATE_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "orchestrate.toml").write_text(f'[deploy]\nswitch = "tachyon.lab.test:4000"\nbackground_url = "{URL}"\n')
    cli._register()
    engine = create_db_engine(db_url)
    init_schema(engine)
    yield engine
    engine.dispose()


def invoke(*args: str):
    return CliRunner().invoke(cli.app, list(args))


def _lab(engine, *, good: int = 0, bad: bool = True) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        for i in range(good):
            seed.device(s, f"mac-{i:02d}")
        if bad:
            seed.device(s, "mac-wrong", cert_names=["MAC-WRONG.local"], hostname="mac-wrong.local")
            seed.device(s, "mac-nocert", cert=False)
        seed.artifact(s, "8.0.2.5")


def test_deploy_refuses_a_bad_request_with_exit_2(env) -> None:  # type: ignore[no-untyped-def]
    _lab(env)
    r = invoke("deploy", "--group", "lab", "--switch", "nohost")
    assert r.exit_code == 2, r.output
    assert "Switch (HOST:PORT) 'nohost' is not valid" in r.stderr
    r = invoke("deploy", "--group", "lab", "--version", "1.2.3")
    assert r.exit_code == 2 and "no DMG for version 1.2.3: orchestrate artifact add" in r.stderr
    r = invoke("deploy", "--group", "nope")
    assert r.exit_code == 2 and "unknown group" in r.stderr
    with Session(env) as s:
        assert s.exec(select(Run)).all() == []


def test_deploy_with_every_device_refused_records_the_run_and_exits_1(env) -> None:  # type: ignore[no-untyped-def]
    _lab(env)
    r = invoke("deploy", "--group", "lab")
    assert r.exit_code == 1, r.output
    assert "mac-wrong: refused (HostnameMismatch)" in r.stderr
    assert "mac-nocert: refused (NoCertificate)" in r.stderr
    assert "HostnameMismatch" in r.stdout and "plan" in r.stdout  # the final table names the step
    with Session(env) as s:
        jobs = s.exec(select(DeviceJob)).all()
        assert sorted((j.status, j.error_type) for j in jobs) == [("failed", "HostnameMismatch"), ("failed", "NoCertificate")]
    r = invoke("deploy", "--group", "lab", "--json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert {d["device"]: d["error_type"] for d in data["devices"]} == {"mac-wrong": "HostnameMismatch", "mac-nocert": "NoCertificate"}


def test_status_table_and_json(env) -> None:  # type: ignore[no-untyped-def]
    _lab(env, good=2)
    invoke("deploy", "--group", "lab", "--limit", "mac-wrong")
    r = invoke("status", "--group", "lab")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["device", "groups", "version", "connected", "last", "run", "outcome", "last", "error"]
    row = next(line for line in lines if line.startswith("mac-wrong"))
    assert "failed" in row and "HostnameMismatch" in row
    assert "4 device(s), 0 connected" in r.stdout
    assert "lab    not installed  4" in r.stdout
    data = json.loads(invoke("status", "--json", "--limit", "mac-0*").stdout)
    assert [d["name"] for d in data["devices"]] == ["mac-00", "mac-01"]
    assert data["groups"] == {"lab": {"not installed": 2}}
    r = invoke("status", "--group", "nope")
    assert r.exit_code == 2 and "unknown group" in r.stderr


def test_runs_list_show_and_resume_refusals(env) -> None:  # type: ignore[no-untyped-def]
    _lab(env)
    assert "no runs yet" in invoke("runs", "list").stdout
    invoke("deploy", "--group", "lab")
    with Session(env) as s:
        run = s.exec(select(Run)).one()
    r = invoke("runs", "list")
    assert r.exit_code == 0 and run.id[:12] in r.stdout and "2 failed" in r.stdout
    listed = json.loads(invoke("runs", "list", "--json").stdout)
    assert listed[0]["id"] == run.id and listed[0]["counts"] == {"failed": 2}
    r = invoke("runs", "show", run.id[:6])
    assert r.exit_code == 0, r.output
    assert f"run {run.id}  install" in r.stdout and "switch: tachyon.lab.test:4000" in r.stdout
    assert "mac-nocert" in r.stdout and "NoCertificate" in r.stdout
    shown = json.loads(invoke("runs", "show", run.id, "--json").stdout)
    assert shown["params"]["background_url"] == URL and len(shown["jobs"]) == 2
    r = invoke("runs", "show", "zzzz")
    assert r.exit_code == 2 and "no run has an id starting with 'zzzz'" in r.stderr
    with session_scope(env) as s:
        s.exec(select(Run)).one().status = "failed"
    r = invoke("runs", "resume", run.id[:8])
    assert r.exit_code == 2 and "nothing to resume" in r.stderr


# ---------------------------------------------------------------- end to end against macsim

E2E_HOSTS = [
    {"name": "mac-intel", "arch": "x86_64"},
    {"name": "mac-arm", "arch": "arm64", "rosetta": True},
    {"name": "mac-wrong", "arch": "x86_64"},
]


async def test_deploy_end_to_end_dry_run_json_table_and_resume(
    tmp_path: Path, engine, orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:

    from orchestrator.planning.plans import plan_run
    from orchestrator.planning.request import DeployRequest
    from orchestrator.state.models import Device
    from tests.orchestrator.cli_support import cli_env, run
    from tests.workers.lab import SWITCH, VERSION, lab

    async with lab(tmp_path / "lab", engine, E2E_HOSTS, pfx_for={"mac-wrong": "wrong-case"}) as L:
        st = L.settings
        cli_env(L, engine, monkeypatch)

        before = L.marks()
        r = await run("deploy", "--group", "lab", "--dry-run", "--json")
        # the inventory declares no host names, so the wrong-case Mac is refused by its preflight plan
        assert r.exit_code == 1, r.output
        dry = json.loads(r.stdout)
        assert dry["run_id"] is None and dry["refused"] == {}
        plans = {p["device"]: {x["step"]: x["plan"] for x in p["steps"]} for p in dry["plans"]}
        assert set(plans) == {"mac-intel", "mac-arm", "mac-wrong"}
        assert "commands" in plans["mac-intel"]["install"]
        assert plans["mac-wrong"]["preflight"]["refusal"]["error_type"] == "HostnameMismatch"
        with Session(engine) as s:
            assert s.exec(select(Run)).all() == []
        for n, count in before.items():  # a dry run gathers facts: nothing installs
            assert not [c for c in L.commands(n, since=count) if "installer" in c or "install.sh" in c]
        r = await run("deploy", "--group", "lab", "--dry-run")
        assert r.exit_code == 1 and "dry run: nothing was changed" in r.stdout
        assert "preflight: REFUSED HostnameMismatch" in r.stdout and "sudo " in r.stdout

        # once the inventory says what the Mac is called, planning refuses it before any connection
        with session_scope(engine) as s:
            s.exec(select(Device).where(Device.name == "mac-wrong")).one().expected_hostname = (
                L.fleet.hosts["mac-wrong"].hostname
            )

        r = await run("deploy", "--group", "lab", "--json")
        assert r.exit_code == 1, r.output
        out = json.loads(r.stdout)
        assert {d["device"]: d["status"] for d in out["devices"]} == {
            "mac-intel": "succeeded", "mac-arm": "succeeded", "mac-wrong": "failed"}  # fmt: skip
        wrong = next(d for d in out["devices"] if d["device"] == "mac-wrong")
        assert (wrong["error_type"], wrong["step"]) == ("HostnameMismatch", "plan")
        for n in ("mac-intel", "mac-arm"):
            dev = L.device(n)
            assert (dev.installed_version, dev.connected) == (VERSION, True)

        r = await run("deploy", "--group", "lab", "--limit", "mac-intel,mac-arm")
        assert r.exit_code == 0, r.output
        assert "[1/2]" in r.stdout and "[2/2]" in r.stdout and "succeeded" in r.stdout
        assert "2 device(s): 2 succeeded" in r.stdout

        # a run stopped part-way (as Ctrl-C leaves it: halted, a job interrupted) is finished by resume
        with session_scope(engine) as s:
            planned = plan_run(s, st.model_copy(update={"deploy": st.deploy.model_copy(
                update={"switch": SWITCH, "background_url": URL})}), DeployRequest(["lab"], ["mac-*"]), "t")  # fmt: skip
        with session_scope(engine) as s:
            s.get(Run, planned.run_id).status = "halted"  # type: ignore[union-attr]
            intel = s.exec(select(Device).where(Device.name == "mac-intel")).one()
            job = s.exec(select(DeviceJob).where(DeviceJob.run_id == planned.run_id,
                                                 DeviceJob.device_id == intel.id)).one()  # fmt: skip
            job.status = "interrupted"
        r = await run("runs", "resume", str(planned.run_id)[:10])
        assert r.exit_code == 1, r.output  # mac-wrong was refused when the run was planned
        assert "resuming run" in r.stdout and "2 device(s) to continue" in r.stdout
        shown = json.loads((await run("runs", "show", str(planned.run_id), "--json")).stdout)
        assert {j["device"]: j["status"] for j in shown["jobs"]} == {
            "mac-intel": "succeeded", "mac-arm": "succeeded", "mac-wrong": "failed"}  # fmt: skip
        assert shown["status"] == "failed"


def test_the_command_line_names_the_only_command_module_loaded() -> None:
    from orchestrator.cli import _command_in

    assert _command_in(["status", "--group", "lab"]) == "status"
    assert _command_in(["-v", "--log-file", "x.log", "runs", "show", "abc"]) == "runs"
    assert _command_in(["--log-file=x.log", "deploy"]) == "deploy"
    assert _command_in(["--help"]) is None and _command_in([]) is None


def test_orchestrate_status_as_a_process_loads_only_its_command(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "ORCHESTRATE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
           "ORCHESTRATE_CONFIG": str(tmp_path / "none.toml")}  # fmt: skip
    (tmp_path / "none.toml").write_text("")
    probe = ("import sys, runpy; sys.argv = ['orchestrate', 'status']\n"
             "try:\n    runpy.run_module('orchestrator', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.startswith('orchestrator.cli.')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    loaded = out.stdout.strip().splitlines()[-1]
    assert "orchestrator.cli.status" in loaded
    for other in ("certs", "deploy", "upgrade", "lifecycle", "demo", "artifact"):
        assert f"orchestrator.cli.{other}'" not in loaded, loaded
