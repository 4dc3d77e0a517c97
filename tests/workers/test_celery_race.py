"""A controller and a Celery worker racing for the same jobs: the run is dispatched to a real `celery worker`
process and, at the same moment, driven by the local driver in this process. The job leases must give every
device to one of them: each Mac's command log shows exactly one install and no two executions at once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from orchestrator.state.models import JobStatus
from tests.workers.celery_support import celery_lab, exec_intervals, overlapping
from tests.workers.test_celery_driver import _hosts
from workers.celery_dispatch import dispatch
from workers.local import drive

pytestmark = [pytest.mark.parametrize("db_url", ["postgresql"], indirect=True), pytest.mark.timeout(120)]


async def test_a_controller_and_a_celery_worker_never_run_one_device_twice(tmp_path: Path, engine: Engine) -> None:
    hosts = _hosts(6, faults={"latency_ms": 30})
    async with celery_lab(tmp_path, engine, hosts, workers=1) as C:
        L = C.lab
        run_id = L.create_run()
        await asyncio.gather(asyncio.to_thread(dispatch, L.engine, C.app, run_id),
                             drive(L.engine, C.settings, run_id, concurrency=6))  # fmt: skip
        deadline = time.monotonic() + 60  # the worker may still be finishing devices the driver left to it
        while any(j.status in JobStatus.unfinished() for j in L.jobs(run_id).values()):
            assert time.monotonic() < deadline, Counter(j.status for j in L.jobs(run_id).values())
            await asyncio.sleep(0.2)
        jobs = L.jobs(run_id)
        assert Counter(j.status for j in jobs.values()) == {"succeeded": 6}
        for h in hosts:
            rows = exec_intervals(L.fleet.hosts[h["name"]].state_dir)
            assert sum("install.sh" in c for _s, _e, c in rows) == 1, h["name"]
            assert not overlapping(rows), (h["name"], overlapping(rows)[:2])
        print("lease owners:", Counter(j.lease_owner for j in jobs.values()))
