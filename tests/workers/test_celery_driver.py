"""The Celery driver end to end: a real redis-server (password, AOF) on a private port, real `celery worker`
processes (threads pool), PostgreSQL, and a macsim fleet served by this test's event loop.

- 50 Macs through two workers end like the local driver (every device succeeded, every step recorded), and
  a canary PFX password is nowhere in Redis (keys and values after the run, MONITOR during it), the result
  backend, the worker logs or the database;
- SIGKILL of one worker mid-run: the run completes, no step's executions overlap on a Mac and no completed
  mutating step ran again (macsim command logs);
- a Redis restart mid-run: the run completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from orchestrator.state.models import Device, Run, RunStatus
from tests.workers.celery_support import LEASE_TTL, CeleryLab, celery_lab, exec_intervals, overlapping
from tests.workers.lab import VERSION
from workers.celery_dispatch import dispatch, follow
from workers.events import JobFinished, JobStarted, RunEvent, StepFinished

pytestmark = [pytest.mark.parametrize("db_url", ["postgresql"], indirect=True), pytest.mark.timeout(240)]

async def _run(C: CeleryLab, run_id: str, events: list[RunEvent] | None = None, **kw: Any) -> Run:
    await asyncio.to_thread(dispatch, C.lab.engine, C.app, run_id)
    run = await asyncio.wait_for(
        follow(C.lab.engine, C.app, run_id, on_event=events.append if events is not None else None,
               every=0.2, watchdog=2.0, **kw),
        timeout=180,
    )  # fmt: skip
    assert run is not None
    return run


MUTATING = re.compile(r"(?<![\w.-])(?:hdiutil attach|installer|install\.sh|security -i|add-trusted-cert|"
                      r"launchctl (?:kickstart|load|bootstrap))(?![\w.-])")  # fmt: skip


def _hosts(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"name": f"mac-{i:02d}", "arch": "x86_64" if i % 2 else "arm64", "rosetta": True, **extra}
            for i in range(n)]  # fmt: skip


def _database_text(engine: Engine) -> str:
    out: list[str] = []
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in conn.execute(text(f'SELECT * FROM "{table.name}"')):
                out.append(repr(tuple(row)))
    return "\n".join(out)


async def test_fifty_macs_through_two_workers_like_the_local_driver_and_no_secret_leaks(
    tmp_path: Path, engine: Engine
) -> None:
    async with celery_lab(tmp_path, engine, _hosts(50), backend=True) as C:
        L = C.lab
        canaries = [L.certs.password_for(p) for p in L.certs.host_pfx.values()]
        monitor = C.redis.monitor(tmp_path / "monitor.txt")
        events: list[RunEvent] = []
        run_id = L.create_run()
        t0 = time.monotonic()
        try:
            run = await _run(C, run_id, events)
        finally:
            monitor.terminate()
            monitor.wait(10)
        elapsed = time.monotonic() - t0
        assert run.status == RunStatus.SUCCEEDED, (run.status, run.halt_reason)
        jobs = L.jobs(run_id)
        assert Counter(j.status for j in jobs.values()) == {"succeeded": 50}
        assert all(j.ended_at is not None and j.error_type is None for j in jobs.values())
        steps = L.steps(run_id, "mac-07")
        assert {"connect", "facts", "preflight", "install", "verify"} <= set(steps), sorted(steps)
        assert all(s.status in ("changed", "ok", "noop", "skipped") for s in steps.values())
        with Session(L.engine) as s:
            devices = s.exec(select(Device)).all()
            assert {d.installed_version for d in devices} == {VERSION}
            assert all(d.last_outcome == "succeeded" and d.connected for d in devices)
        # the live display's events, rebuilt from the database
        started = {e.device for e in events if isinstance(e, JobStarted)}
        finished = Counter(e.status for e in events if isinstance(e, JobFinished))
        assert len(started) == 50 and finished == {"succeeded": 50}
        assert sum(isinstance(e, StepFinished) for e in events) >= 50 * 8
        # both workers took part, and the worker logs show readable task names
        logs = [w.log.read_text() for w in C.workers]
        assert all("macfleet.device_job" in t and "succeeded" in t for t in logs), [t[-2000:] for t in logs]
        # the result backend holds small JSON results (no secret)
        dump = C.redis.dump()
        backend = C.redis.client(1)
        results: dict[str, Any] = {}
        for _ in range(50):  # the last task stores its result just after it finished the run
            metas = [json.loads(backend.get(k)) for k in backend.scan_iter("celery-task-meta-*")]
            results = {m["result"]["device"]: m["result"] for m in metas if m["status"] == "SUCCESS"}
            if len(results) == 50:
                break
            await asyncio.sleep(0.2)
        assert len(results) == 50 and results["mac-07"]["status"] == "succeeded", list(results.items())[:2]
        assert metas[0]["name"] == "macfleet.device_job" and metas[0]["args"][2].startswith("mac-")
        # the canary PFX passwords are nowhere
        places = {
            "redis": dump,
            "monitor": (tmp_path / "monitor.txt").read_text(errors="replace"),
            "worker logs": "\n".join(logs),
            "database": _database_text(L.engine),
        }
        assert "LPUSH" in places["monitor"].upper() or "lpush" in places["monitor"]
        for where, body in places.items():
            for canary in canaries:
                assert canary not in body, f"a PFX password leaked into {where}"
        print(f"50 Macs through 2 Celery workers: {elapsed:.1f} s")


async def test_sigkill_of_a_worker_mid_run_completes_without_overlap_or_repeat(
    tmp_path: Path, engine: Engine
) -> None:
    hosts = _hosts(12, faults={"latency_ms": 40})  # slow enough that the kill lands mid-step
    async with celery_lab(tmp_path, engine, hosts, visibility=10.0) as C:
        L = C.lab
        run_id = L.create_run()
        await asyncio.to_thread(dispatch, L.engine, C.app, run_id)
        victim = C.workers.items[0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill once some device finished a mutating step
            logged = [exec_intervals(L.fleet.hosts[h["name"]].state_dir) for h in hosts]
            if any(MUTATING.search(c) for rows in logged for _s, _e, c in rows):
                break
            await asyncio.sleep(0.05)
        victim.kill()
        killed_at = time.time()
        run = await asyncio.wait_for(
            follow(L.engine, C.app, run_id, every=0.2, watchdog=2.0, reap_after=LEASE_TTL), timeout=150
        )
        assert run is not None and run.status == RunStatus.SUCCEEDED, (run and run.status, run and run.halt_reason)
        jobs = L.jobs(run_id)
        assert Counter(j.status for j in jobs.values()) == {"succeeded": 12}
        assert max(j.attempts for j in jobs.values()) >= 2  # some job was taken over after the kill
        for h in hosts:
            rows = exec_intervals(L.fleet.hosts[h["name"]].state_dir)
            assert not overlapping(rows), (h["name"], overlapping(rows)[:3])
            # a mutating command runs again only when the kill cut it (it was still running at the kill)
            seen: dict[str, float] = {}
            for _s, e, c in sorted(rows):
                if not MUTATING.search(c):
                    continue
                if c in seen:
                    assert seen[c] >= killed_at - 0.5, (h["name"], "a completed step ran again", c[:200])
                seen[c] = e


async def test_a_redis_restart_mid_run_and_the_run_completes(tmp_path: Path, engine: Engine) -> None:
    hosts = _hosts(10, faults={"latency_ms": 30})
    async with celery_lab(tmp_path, engine, hosts, workers=1) as C:
        L = C.lab
        run_id = L.create_run()
        await asyncio.to_thread(dispatch, L.engine, C.app, run_id)
        await asyncio.sleep(1.5)
        await asyncio.to_thread(C.redis.restart, 1.0)
        run = await asyncio.wait_for(
            follow(L.engine, C.app, run_id, every=0.2, watchdog=2.0, reap_after=LEASE_TTL), timeout=150
        )
        # every job was published before the restart (one wave) and Redis keeps its queues (AOF): nothing
        # needs re-publishing, so the promise is completion, not a halt
        assert run is not None and run.status == RunStatus.SUCCEEDED, (run and run.status, run and run.halt_reason)
        assert Counter(j.status for j in L.jobs(run_id).values()) == {"succeeded": 10}
        for h in hosts:  # and no Mac installed twice across the restart
            rows = exec_intervals(L.fleet.hosts[h["name"]].state_dir)
            assert sum("install.sh" in c for _s, _e, c in rows) == 1, h["name"]
        with contextlib.suppress(Exception):
            C.redis.client().ping()
