"""Waves on the Celery executor through the real CLI (`orchestrate` processes, a `celery worker`, Redis,
PostgreSQL, macsim):

- `upgrade --waves 1,2,100% --max-failures 0` with the second wave's Macs broken: the run halts at the
  gate and the last wave's Macs never see a command;
- `runs resume --executor celery --detach` returns at once and the workers open the next waves themselves,
  one after the other, until the run succeeds;
- `runs halt` from the command line stops a detached run: its later waves stay untouched."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from orchestrator.planning.plans import plan_upgrade_run
from orchestrator.planning.request import DeployRequest, UpgradeOptions, WaveRequest
from orchestrator.state.models import DeviceJob, JobStatus, Run, RunStatus
from tests.workers.celery_support import CeleryLab, celery_lab, process_env
from tests.workers.lab import BACKGROUND, SWITCH, VERSION

pytestmark = [pytest.mark.parametrize("db_url", ["postgresql"], indirect=True), pytest.mark.timeout(180)]

HOSTS = [{"name": f"mac-{i:02d}", "arch": "x86_64"} for i in range(13)]


async def _cli(C: CeleryLab, *args: str) -> tuple[int, str]:
    env = process_env(C.lab.base / "cli", C.settings, COLUMNS="200", ORCHESTRATE_EXECUTOR="celery")
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "orchestrator", *args], env=env, capture_output=True, timeout=120
    )
    return proc.returncode, (proc.stdout + proc.stderr).decode()


def _plan(C: CeleryLab, names: list[str], waves: str, canary: str) -> str:
    """An upgrade run in waves, planned but not started (as `upgrade` plans it)."""
    with Session(C.lab.engine) as s:
        plan = plan_upgrade_run(
            s, C.settings,
            DeployRequest(groups=[], limits=names, switch=SWITCH, background_url=BACKGROUND,
                                   version=VERSION),
            WaveRequest(waves=waves, max_failures="0", canary=(canary,)), UpgradeOptions(), "tester",
        )  # fmt: skip
        s.commit()
        assert plan.run_id is not None
        return plan.run_id


def _run(C: CeleryLab, run_id: str) -> Run:
    with Session(C.lab.engine) as s:
        run = s.get(Run, run_id)
        assert run is not None
        return run


def _waves(C: CeleryLab, run_id: str) -> dict[int, dict[str, DeviceJob]]:
    out: dict[int, dict[str, DeviceJob]] = {}
    for name, j in C.lab.jobs(run_id).items():
        out.setdefault(j.wave, {})[name] = j
    return out


def _statuses(waves: dict[int, dict[str, DeviceJob]]) -> dict[int, dict[str, str]]:
    return {w: {n: j.status for n, j in jobs.items()} for w, jobs in sorted(waves.items())}


async def _until(what: str, check: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_celery_waves_threshold_halt_detach_and_cli_halt(tmp_path: Path, engine: Engine) -> None:
    async with celery_lab(tmp_path, engine, HOSTS, workers=1) as C:
        L = C.lab
        # 1. the threshold: wave 2's Mac cannot mount the DMG; the gate halts the run before wave 3
        names = [f"mac-{i:02d}" for i in range(5)]
        for name in names[1:]:
            L.fleet.set_faults(name, fail_tools={"hdiutil": 1})
        code, out = await _cli(C, "upgrade", "--limit", ",".join(names), "--to", VERSION, "--switch", SWITCH,
                               "--background-url", BACKGROUND, "--waves", "1,2,100%", "--max-failures", "0",
                               "--canary", "mac-00")  # fmt: skip
        assert code == 1, out
        with Session(L.engine) as s:
            (run_id,) = s.exec(select(Run.id).where(Run.kind == "upgrade")).all()
        waves = _statuses(_waves(C, run_id))
        assert waves[0] == {"mac-00": "succeeded"} and list(waves[1].values()) == ["failed"], waves
        assert set(waves[2].values()) == {"pending"} and len(waves[2]) == 3, waves
        for name in waves[2]:  # the last wave untouched on the Macs too
            assert L.commands(name) == [], name
        assert _run(C, run_id).status == RunStatus.HALTED

        # 2. --detach: the CLI returns once dispatched; the workers open waves 2 and 3 themselves
        names = [f"mac-{i:02d}" for i in range(5, 9)]
        for name in names:
            L.fleet.set_faults(name, latency_ms=30)
        run_id = _plan(C, names, "1,2,100%", "mac-05")
        code, out = await _cli(C, "runs", "resume", run_id, "--executor", "celery", "--detach")
        assert code == 0 and "dispatched" in out, out
        assert any(j.status == "pending" for j in L.jobs(run_id).values())  # the CLI did not wait for them
        await _until("the detached run", lambda: _run(C, run_id).status not in ("running", "pending"))
        assert _run(C, run_id).status == RunStatus.SUCCEEDED, _run(C, run_id).halt_reason
        waves_ = _waves(C, run_id)
        assert [len(w) for _, w in sorted(waves_.items())] == [1, 1, 2]
        for w in (0, 1):  # each wave opened after the one before it finished
            ended = max(j.ended_at for j in waves_[w].values() if j.ended_at)
            assert all(j.started_at and j.started_at >= ended for j in waves_[w + 1].values()), w

        # 3. `runs halt` on the command line stops a detached run: the later waves stay untouched
        names = [f"mac-{i:02d}" for i in range(9, 13)]
        L.fleet.set_faults("mac-09", latency_ms=250)  # the canary is slow: the halt lands during wave 1
        run_id = _plan(C, names, "1,2,100%", "mac-09")
        code, out = await _cli(C, "runs", "resume", run_id, "--executor", "celery", "--detach")
        assert code == 0, out
        code, out = await _cli(C, "runs", "halt", run_id, "--reason", "change freeze")
        assert code == 0, out
        assert _run(C, run_id).status == RunStatus.HALTED
        await _until("no job in flight", lambda: not any(j.status in JobStatus.in_flight()
                                                         for j in L.jobs(run_id).values()), 30)  # fmt: skip
        await asyncio.sleep(1.0)  # time for a worker that (wrongly) opened the next wave to start it
        assert L.commands("mac-09"), "the canary never started"
        waves = _statuses(_waves(C, run_id))
        assert waves[1] == {"mac-10": "pending"} and set(waves[2].values()) == {"pending"}, waves
        for name in names[1:]:
            assert L.commands(name) == [], name
        assert _run(C, run_id).status == RunStatus.HALTED
