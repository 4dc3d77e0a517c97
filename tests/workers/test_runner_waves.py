"""Waves through the local driver: a hand halt stops starting devices. (The threshold halt and resume of
a 20-Mac upgrade is tested through the CLI in tests/orchestrator/test_cli_lifecycle.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from orchestrator.runs import halt_run
from orchestrator.state.db import session_scope
from orchestrator.state.models import Device, DeviceJob, JobStatus, Run, RunStatus
from orchestrator.waves import assign_waves, parse_waves
from tests.workers.lab import Lab, lab
from workers.local import drive

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

HOSTS = [{"name": f"mac-{i:02d}", "arch": "x86_64"} for i in range(1, 21)]
BROKEN = ["mac-03", "mac-04", "mac-12"]  # mac-03/04 land in wave 1, mac-12 in wave 2


def _wave_run(L: Lab, waves: str, max_failures: str) -> str:
    run_id = L.create_run(max_failures=max_failures)
    names = [h["name"] for h in HOSTS]
    assignment = assign_waves(names, parse_waves(waves, len(names)))
    with Session(L.engine) as s:
        ids = {d.id: d.name for d in s.exec(select(Device)).all()}
        for job in s.exec(select(DeviceJob).where(DeviceJob.run_id == run_id)).all():
            job.wave = assignment[ids[job.device_id]]
            s.add(job)
        s.commit()
    return run_id


def _statuses(L: Lab, run_id: str) -> dict[str, str]:
    return {name: j.status for name, j in L.jobs(run_id).items()}


async def test_hand_halt_stops_new_devices(tmp_path: Path, engine: Engine) -> None:
    async with lab(tmp_path, engine, HOSTS[:6]) as L:
        L.fleet.set_faults("mac-01", latency_ms=60)  # the canary takes a moment
        run_id = L.create_run()

        async def halt_soon() -> None:
            await asyncio.sleep(0.3)
            with session_scope(L.engine) as s:  # what `orchestrate runs halt` calls
                halt_run(s, run_id, "alice")

        _, outcome = await asyncio.gather(halt_soon(), drive(L.engine, L.settings, run_id, concurrency=1))
        assert outcome.status == RunStatus.HALTED
        st = _statuses(L, run_id)
        assert JobStatus.PENDING in st.values()  # devices not started stay untouched...
        for name, status in st.items():  # ...on the Macs too: not one command reached them
            if status == JobStatus.PENDING:
                assert L.commands(name) == [], name
            else:  # the one started before the halt finished, or stopped between steps, never left running
                assert status in (JobStatus.SUCCEEDED, JobStatus.INTERRUPTED) and L.commands(name), (name, status)
        with Session(L.engine) as s:  # the driver left the run halted (it did not finish it over the halt)
            run = s.get(Run, run_id)
            assert run is not None and run.status == RunStatus.HALTED and run.ended_at is None


async def test_an_unreachable_mac_is_retried_until_it_answers(tmp_path: Path, engine: Engine) -> None:
    async with lab(tmp_path, engine, HOSTS[:2]) as L:
        L.fleet.set_faults("mac-02", refuse_connections=True)  # a laptop asleep
        run_id = L.create_run(retry_unreachable=60.0)

        async def wake_up() -> None:
            await asyncio.sleep(2.0)
            L.fleet.set_faults("mac-02", refuse_connections=False)

        _, outcome = await asyncio.gather(wake_up(), drive(L.engine, L.settings, run_id))
        assert outcome.status == RunStatus.SUCCEEDED, outcome.failed
        steps = L.steps(run_id, "mac-02")
        assert steps["verify"].status == "ok"
        job = L.jobs(run_id)["mac-02"]
        assert job.status == JobStatus.SUCCEEDED
        with Session(L.engine) as s:  # the first attempt's refusal is on record too
            from orchestrator.state.models import StepRun

            connects = s.exec(select(StepRun).where(StepRun.job_id == job.id, StepRun.step == "connect")).all()
            assert sorted(c.status for c in connects) == ["failed", "ok"]


async def test_an_unreachable_mac_fails_when_the_window_closes(tmp_path: Path, engine: Engine) -> None:
    async with lab(tmp_path, engine, HOSTS[:1]) as L:
        L.fleet.set_faults("mac-01", refuse_connections=True)
        run_id = L.create_run(retry_unreachable=3.0)  # shorter than the first backoff: no retry
        outcome = await drive(L.engine, L.settings, run_id)
        assert outcome.status == RunStatus.FAILED
        assert L.jobs(run_id)["mac-01"].error_type == "Unreachable"
