"""`unverified` end to end through the command line against macsim: a Mac whose client says nothing and
shows no socket ends `unverified` (not failed) with exit code 3, its row `connected: -`; `status` counts it;
`converge` looks again; `status --refresh` re-checks it read-only once the connection shows, and the row
becomes connected."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

import orchestrator.cli as cli
from orchestrator.state.models import DeviceJob, Run, StepRun
from tests.workers.lab import SWITCH, VERSION, lab

URL = "https://tachyon.lab.test:443/Background/"
HOSTS = [
    {"name": "mac-loud", "faults": {"client_log": "reworded"}},
    {"name": "mac-quiet", "faults": {"client_log": "silent"}},
]
MUTATING = ("launchctl kickstart", "launchctl load", "launchctl bootout", "security -i", "add-trusted-cert",
            "delete-", "installer -pkg", "install.sh", "hdiutil attach", "rm -", "mkdir -p", "mv -f")  # fmt: skip


async def test_unverified_exit_code_row_status_and_refresh(
    tmp_path: Path, engine, orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    async with lab(tmp_path / "lab", engine, HOSTS) as L:
        st = L.settings
        for var, value in {
            "DATABASE_URL": engine.url.render_as_string(hide_password=False), "DATA_DIR": str(st.data_dir),
            "SECRET_KEY": str(st.secret_key), "SSH__KNOWN_HOSTS": str(st.ssh.known_hosts),
            "DEPLOY__SWITCH": SWITCH, "DEPLOY__BACKGROUND_URL": URL, "DEPLOY__VERIFY_TIMEOUT": "2",
            "VERIFY__INTERVAL": "0.2",
        }.items():  # fmt: skip
            monkeypatch.setenv(f"ORCHESTRATE_{var}", value)
        cli._register()

        async def run(*args: str):  # type: ignore[no-untyped-def]
            return await asyncio.to_thread(CliRunner().invoke, cli.app, list(args))

        r = await run("deploy", "--group", "lab", "--json")
        assert r.exit_code == 3, r.output
        out = {d["device"]: d for d in json.loads(r.stdout)["devices"]}
        assert (out["mac-loud"]["status"], out["mac-quiet"]["status"]) == ("succeeded", "unverified")
        quiet = L.device("mac-quiet")
        assert (quiet.installed_version, quiet.connected, quiet.last_outcome) == (VERSION, None, "unverified")
        assert "verify:" in (quiet.last_error or "")
        with Session(engine) as s:
            job = s.exec(select(DeviceJob).where(DeviceJob.device_id == quiet.id)).one()
            step = s.exec(select(StepRun).where(StepRun.job_id == job.id, StepRun.step == "verify")).one()
            assert (job.status, job.error_type, step.status) == ("unverified", "Unverified", "unverified")

        r = await run("status", "--group", "lab")
        assert r.exit_code == 0, r.output
        assert "2 device(s), 1 connected, 1 unverified" in r.stdout
        assert json.loads((await run("status", "--json")).stdout)["unverified"] == 1

        # converge looks again (the row has the version): still no evidence, still unverified, not failed
        r = await run("converge", "--group", "lab", "--json")
        assert r.exit_code == 3, r.output
        assert {d["device"]: d["status"] for d in json.loads(r.stdout)["devices"]} == {
            "mac-loud": "succeeded", "mac-quiet": "unverified"}  # fmt: skip

        # the client's connection becomes visible (lsof shows its socket): a read-only re-check sees it
        L.fleet.set_faults("mac-quiet", client_log="socket-only")
        marks = L.marks()
        r = await run("status", "--group", "lab", "--refresh")
        assert r.exit_code == 0, r.output
        assert "2 device(s), 2 connected" in r.stdout and "unverified" not in r.stdout.split("device(s)")[-1]
        quiet = L.device("mac-quiet")
        assert (quiet.connected, quiet.last_outcome, quiet.installed_version) == (True, "succeeded", VERSION)
        for name, since in marks.items():
            done = L.commands(name, since=since)
            assert len(done) == 2, done  # facts, then ONE verify poll
            assert not [c for c in done if any(m in c for m in MUTATING)], done
        with Session(engine) as s:
            assert s.exec(select(Run).where(Run.kind == "check")).one().status == "succeeded"
