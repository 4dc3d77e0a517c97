"""The install workflow through the local driver against macsim: real SSH, real database rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from orchestrator.state.models import JobStatus, RunStatus
from tests.workers.lab import SWITCH, VERSION, lab
from workers.events import JobFinished, RunEvent
from workers.local import drive

HOSTS: list[dict[str, Any]] = [
    {"name": "mac-intel", "arch": "x86_64"},
    {"name": "mac-arm-rosetta", "arch": "arm64", "rosetta": True},
    {"name": "mac-arm-bare", "arch": "arm64", "rosetta": False},
]


async def test_fresh_fleet_installs_connects_and_rerun_changes_nothing(tmp_path: Path, engine: Engine) -> None:
    async with lab(tmp_path, engine, HOSTS) as L:
        events: list[RunEvent] = []
        run_id = L.create_run()
        outcome = await drive(L.engine, L.settings, run_id, on_event=events.append)
        assert outcome.status == RunStatus.SUCCEEDED, outcome.failed
        jobs = L.jobs(run_id)
        assert {j.status for j in jobs.values()} == {JobStatus.SUCCEEDED}
        for h in HOSTS:
            mac = L.fleet.hosts[h["name"]].mac
            log = mac.fs.read_text("/Library/Logs/1E.Client.log").strip().splitlines()
            assert f"Connected to Switch {SWITCH}" in log[-1]
            steps = L.steps(run_id, h["name"])
            assert steps["verify"].status == "ok"
            assert steps["install"].status == "changed"
            assert steps["rosetta"].status == ("changed" if h["name"] == "mac-arm-bare" else "noop")
            dev = L.device(h["name"])
            assert (dev.installed_version, dev.connected, dev.last_outcome) == (VERSION, True, "succeeded")
        finished = [e for e in events if isinstance(e, JobFinished)]
        assert len(finished) == 3
        trips = {r.name: r.round_trips for r in outcome.results}
        assert all(t <= 8 for t in trips.values()), trips
        print("round trips", trips)

        again = L.create_run()
        second = await drive(L.engine, L.settings, again)
        assert second.status == RunStatus.SUCCEEDED
        for r in second.results:
            assert r.mutating_commands == 0, r.name
        for h in HOSTS:
            steps = L.steps(again, h["name"])
            assert {s.status for n, s in steps.items() if n not in ("connect", "facts", "verify")} == {"noop"}
