"""The controller (`orchestrate deploy --executor celery`, a real CLI process) is SIGKILLed mid-dispatch: its
jobs are marked queued but Redis (frozen with SIGSTOP) never got their messages. `orchestrate runs resume
--executor celery` puts them back to pending, publishes them, follows the run and it completes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from orchestrator.state.models import DeviceJob, Run, RunStatus
from tests.workers.celery_support import celery_lab, process_env, settings_env
from tests.workers.lab import BACKGROUND, SWITCH

pytestmark = [pytest.mark.parametrize("db_url", ["postgresql"], indirect=True), pytest.mark.timeout(240)]

HOSTS = [{"name": f"mac-{i:02d}", "arch": "x86_64"} for i in range(6)]


def _cli(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    full = process_env(tmp_path, COLUMNS="200", **env)
    return subprocess.Popen([sys.executable, "-m", "orchestrator", *args], cwd=tmp_path, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


async def test_controller_killed_mid_dispatch_then_runs_resume_completes(tmp_path: Path, engine: Engine) -> None:
    async with celery_lab(tmp_path, engine, HOSTS, workers=1) as C:
        env = settings_env(C.settings)
        assert C.redis.proc is not None
        os.kill(C.redis.proc.pid, signal.SIGSTOP)  # the broker hangs: the controller blocks mid-publish
        try:
            ctl = _cli(tmp_path, env, "deploy", "--group", "lab", "--switch", SWITCH, "--background-url",
                       BACKGROUND, "--executor", "celery", "--json")  # fmt: skip
            deadline = time.monotonic() + 60
            queued: list[DeviceJob] = []
            while time.monotonic() < deadline and not queued:
                await asyncio.sleep(0.1)
                assert ctl.poll() is None, ctl.communicate()
                with Session(C.lab.engine) as s:
                    queued = list(s.exec(select(DeviceJob).where(DeviceJob.status == "queued")).all())
            assert queued, "the controller never marked a wave queued"
            os.kill(ctl.pid, signal.SIGKILL)
            ctl.wait(10)
        finally:
            os.kill(C.redis.proc.pid, signal.SIGCONT)
        run_id = queued[0].run_id
        await asyncio.sleep(1.0)
        with Session(C.lab.engine) as s:  # nothing ran: the messages were never sent
            statuses = Counter(j.status for j in s.exec(select(DeviceJob).where(DeviceJob.run_id == run_id)).all())
        assert statuses["succeeded"] == 0, statuses

        resume = _cli(tmp_path, env, "runs", "resume", run_id[:12], "--executor", "celery", "--json")
        out, err = await asyncio.to_thread(resume.communicate, timeout=150)
        assert resume.returncode == 0, (out.decode()[-3000:], err.decode()[-3000:])
        data = json.loads(out.decode()[out.decode().index("{"):])
        assert data["status"] == "succeeded" and data["counts"] == {"succeeded": len(HOSTS)}, data
        with Session(C.lab.engine) as s:
            run = s.get(Run, run_id)
            assert run is not None and run.status == RunStatus.SUCCEEDED and run.executor == "celery"


async def test_one_worker_holds_many_device_sessions_at_once(tmp_path: Path, engine: Engine) -> None:
    """80 Macs, one worker process (threads pool on one asyncio loop): every Mac answers slowly (latency) and
    fails its preflight (no disk space), so each session is short but long enough to overlap; the peak of
    concurrent sessions shows one process holding them at once. (The 200-session figure is measured by
    bench/celery.py: on 2 busy cores 200 simultaneous handshakes in one test process drop some links.)"""
    from tests.workers.celery_support import exec_intervals, peak_concurrency
    from workers.celery_dispatch import dispatch, follow

    hosts = [{"name": f"mac-{i:03d}", "arch": "x86_64", "free_space_mb": 1, "faults": {"latency_ms": 1500}}
             for i in range(80)]  # fmt: skip
    async with celery_lab(tmp_path, engine, hosts, workers=1, ssh={"connect_timeout": 40.0}) as C:
        run_id = C.lab.create_run()
        await asyncio.to_thread(dispatch, C.lab.engine, C.app, run_id)
        run = await asyncio.wait_for(follow(C.lab.engine, C.app, run_id, every=0.5), timeout=200)
        assert run is not None and run.status == RunStatus.FAILED, (run and run.status)
        jobs = C.lab.jobs(run_id)
        assert Counter((j.status, j.error_type) for j in jobs.values()) == {("failed", "InsufficientSpace"): 80}
        execs = [(s, e) for h in hosts for s, e, _c in exec_intervals(C.lab.fleet.hosts[h["name"]].state_dir)]
        sessions = []  # a device's session: from the start of its connect step to the end of its job
        for h in hosts:
            connect = C.lab.steps(run_id, h["name"])["connect"]
            end = jobs[h["name"]].ended_at
            assert end is not None
            sessions.append((connect.started_at.timestamp(), end.timestamp()))
        peak, peak_execs = peak_concurrency(sessions), peak_concurrency(execs)
        print(f"one worker process: peak {peak} device sessions at once, {peak_execs} execs in flight on the Macs")
        assert peak >= 50 and peak_execs >= 15, (peak, peak_execs)
