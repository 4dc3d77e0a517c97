"""Two controllers racing for the same jobs: two `orchestrate runs resume` processes started together against
one run, on SQLite and on PostgreSQL. The job leases must keep every device's workflow to one controller:
each Mac's own command log shows exactly one install and no two executions at once."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from orchestrator.state.models import Run
from tests.orchestrator.test_controller_killed import _env, _log, _orchestrate
from tests.workers.lab import lab

HOSTS: list[dict[str, Any]] = [{"name": f"mac-{i:02d}", "arch": "x86_64"} for i in range(1, 7)]


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
async def test_two_controllers_resuming_one_run_never_run_a_device_twice(tmp_path: Path, engine: Engine) -> None:
    async with lab(tmp_path, engine, HOSTS) as L:
        for h in HOSTS:  # each device's workflow takes long enough for the other controller to want it too
            L.fleet.set_faults(h["name"], latency_ms=30)
        env = _env(L, engine)
        run_id = L.create_run()
        procs = [await _orchestrate(env, "runs", "resume", run_id, "--concurrency", "6") for _ in range(2)]
        outs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 180)
        # neither crashed
        texts = [(o + e).decode() for o, e in outs]
        assert all(p.returncode is not None and "Traceback" not in t for p, t in zip(procs, texts, strict=True)), texts
        jobs = L.jobs(run_id)
        assert Counter(j.status for j in jobs.values()) == {"succeeded": len(HOSTS)}, texts
        for h in HOSTS:
            log = _log(L, h["name"])
            assert sum("install.sh" in e["command"] for e in log) == 1, (h["name"], texts)
            spans = sorted((e["started"], e["ended"]) for e in log)
            for (_s0, e0), (s1, _e1) in itertools.pairwise(spans):
                assert s1 >= e0, f"{h['name']}: two executions at once"
        with Session(engine) as s:
            run = s.get(Run, run_id)
            assert run is not None
            # the loser of each claim waits for the holder to finish that job, so both end on a finished run
            assert (run.status, [p.returncode for p in procs]) == ("succeeded", [0, 0]), (run.halt_reason, texts)
        # one attempt per job: no controller claimed a job the other held
        assert {j.attempts for j in jobs.values()} == {1}, {n: j.attempts for n, j in jobs.items()}
