"""SIGKILL of the controller in the middle of a run, then `orchestrate runs resume`: the run completes, no
finished step runs again, no two executions overlap on a Mac, and an interrupted device is probed (facts,
read-only) before anything else runs on it. The controller is a real `orchestrate` process; the Macs are
macsim hosts served by this test's event loop; the evidence is each Mac's own command log."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from orchestrator.state.models import DeviceJob, Run, StepRun
from tests.workers.lab import SWITCH, Lab, lab

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

URL = "https://tachyon.lab.test:443/Background/"
HOSTS: list[dict[str, Any]] = [{"name": f"mac-{i:02d}", "arch": "x86_64"} for i in range(1, 11)]
MUTATING = ("install.sh", "installer", "add-trusted-cert", "hdiutil attach", "kickstart", "security -i")


def _env(L: Lab, engine: Engine) -> dict[str, str]:
    st = L.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATE_")}
    env.update({
        "ORCHESTRATE_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "ORCHESTRATE_DATA_DIR": str(st.data_dir), "ORCHESTRATE_SECRET_KEY": str(st.secret_key),
        "ORCHESTRATE_SSH__KNOWN_HOSTS": str(st.ssh.known_hosts), "ORCHESTRATE_DEPLOY__SWITCH": SWITCH,
        "ORCHESTRATE_DEPLOY__BACKGROUND_URL": URL, "ORCHESTRATE_DEPLOY__LEASE_TTL": "3",
        "ORCHESTRATE_CONFIG": str(L.base / "orchestrate.toml"),
    })  # fmt: skip
    (L.base / "orchestrate.toml").write_text("")
    return env


async def _orchestrate(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    """A real `orchestrate` process (its output captured)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _resume_completes(env: dict[str, str], run_id: str, engine: Engine) -> None:
    resume = await _orchestrate(env, "runs", "resume", run_id)
    out, err = await asyncio.wait_for(resume.communicate(), 180)
    assert resume.returncode == 0, (out + err).decode()
    assert set(_counts(engine)) == {"succeeded"}


def _log(L: Lab, name: str) -> list[dict[str, Any]]:
    path = L.fleet.hosts[name].state_dir / "commands.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as s:
        out: dict[str, int] = {}
        for j in s.exec(select(DeviceJob)).all():
            out[j.status] = out.get(j.status, 0) + 1
        return out


async def test_controller_sigkill_then_resume_completes_without_repeating_or_overlapping(
    tmp_path: Path, engine: Engine
) -> None:
    async with lab(tmp_path, engine, HOSTS) as L:
        for h in HOSTS:  # slow each Mac down a little so the kill lands mid-run
            L.fleet.set_faults(h["name"], latency_ms=40)
        env = _env(L, engine)
        proc = await _orchestrate(env, "deploy", "--group", "lab", "--concurrency", "3")
        deadline = time.monotonic() + 120
        while True:
            counts = await asyncio.to_thread(_counts, engine)
            if counts.get("succeeded", 0) >= 2 and counts.get("running", 0) >= 1:
                break
            assert proc.returncode is None, "the controller ended before it could be killed"
            assert time.monotonic() < deadline, counts
            await asyncio.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        killed_at = time.time()
        with Session(engine) as s:
            run = s.exec(select(Run)).one()
            at_kill = {j.device_id: j.status for j in s.exec(select(DeviceJob)).all()}
        names = {L.device(h["name"]).id: h["name"] for h in HOSTS}
        done_before = {names[d] for d, st in at_kill.items() if st == "succeeded"}
        interrupted = {names[d] for d, st in at_kill.items() if st == "running"}
        assert done_before and interrupted

        await _resume_completes(env, run.id, engine)

        for h in HOSTS:
            name = h["name"]
            log = _log(L, name)
            # no two executions overlap on a Mac
            spans = sorted((e["started"], e["ended"]) for e in log)
            for (_s0, e0), (s1, _e1) in itertools.pairwise(spans):
                assert s1 >= e0, f"{name}: overlapping executions"
            # the package went in exactly once, whichever controller did it
            assert sum("install.sh" in e["command"] for e in log) == 1, name
            after = [e["command"] for e in log if e["started"] > killed_at]
            if name in done_before:
                assert after == [], f"{name} finished before the kill, yet ran {after}"
            if name in interrupted:
                assert after, f"{name} was interrupted but the resumed run did nothing there"
                assert "sw_vers" in after[0] and not any(m in after[0] for m in MUTATING), (
                    f"{name}: the first thing after the resume must be the read-only probe"
                )
        with Session(engine) as s:  # the interrupted devices' steps were re-planned from fresh facts
            steps = s.exec(select(StepRun).where(StepRun.attempt >= 2)).all()
            assert {st.step for st in steps} >= {"facts", "verify"}


async def test_ctrl_c_stops_cleanly_records_where_each_device_stood_and_resume_finishes(
    tmp_path: Path, engine: Engine
) -> None:
    async with lab(tmp_path, engine, HOSTS[:6]) as L:
        for h in HOSTS[:6]:
            L.fleet.set_faults(h["name"], latency_ms=40)
        env = _env(L, engine)
        proc = await _orchestrate(env, "deploy", "--group", "lab", "--concurrency", "2")
        deadline = time.monotonic() + 120
        while (await asyncio.to_thread(_counts, engine)).get("running", 0) < 1:
            assert proc.returncode is None and time.monotonic() < deadline
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 130, (out + err).decode()
        assert b"resume with: orchestrate runs resume" in out + err
        names_by_id = {L.device(h["name"]).id: h["name"] for h in HOSTS[:6]}
        with Session(engine) as s:
            run = s.exec(select(Run)).one()
            assert run.status == "halted" and "interrupted by the operator" in (run.halt_reason or "")
            statuses = {j.status for j in s.exec(select(DeviceJob)).all()}
            where = {names_by_id[j.device_id]: j.status for j in s.exec(select(DeviceJob)).all()}
        # every job is recorded as finished, interrupted (it was mid-step) or pending (never started): none is
        # left "running" for a resume to wait out, and the stop came before the run could finish
        assert statuses <= {"succeeded", "interrupted", "pending"}, where
        assert "interrupted" in statuses or "pending" in statuses, where
        for name, status in where.items():  # ...and each record matches what the Mac itself saw
            ran = [e["command"] for e in _log(L, name)]
            if status == "pending":
                assert ran == [], f"{name} is recorded pending but ran {ran}"
            elif status == "succeeded":  # (an interrupted one may have been stopped before its first exec)
                assert sum("install.sh" in c for c in ran) == 1, f"{name} is recorded succeeded: {ran}"
        for h in HOSTS[:6]:  # no PFX left behind on any Mac, even those stopped part-way
            mac = L.fleet.hosts[h["name"]].mac
            assert not any(p.name == "client.p12" for p in mac.fs.real("/private/tmp").rglob("*")), h["name"]
        await _resume_completes(env, run.id, engine)
