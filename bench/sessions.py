"""How many device sessions ONE Celery worker process holds at once.

    .venv/bin/python bench/sessions.py [--hosts 200] [--latency-ms 1500] [--repeat 3]

A real redis-server and PostgreSQL (the tests' helpers), one `celery worker -P threads -c 200` process, and
N macsim Macs (in this process) that answer slowly and fail their preflight (no disk space), so each
device session is short but long enough to overlap. A device's session runs from the start of its connect
step to the end of its job (from the database); the peak of overlapping sessions is what the worker held
at once. The target (issue 6) is >= 200. Prints each run and the median.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

from orchestrator.state.db import create_db_engine, init_schema  # noqa: E402
from tests.conftest import pg_server  # noqa: E402
from tests.workers.celery_support import celery_lab, peak_concurrency  # noqa: E402
from workers.celery_dispatch import dispatch, follow  # noqa: E402


async def one(base: Path, url: str, hosts: int, latency_ms: int) -> tuple[int, float, Counter[str]]:
    engine = create_db_engine(url)
    init_schema(engine)
    slow = {"latency_ms": latency_ms}
    spec = [
        {"name": f"mac-{i:03d}", "arch": "x86_64", "free_space_mb": 1, "faults": slow} for i in range(hosts)
    ]
    async with celery_lab(base, engine, spec, workers=1, ssh={"connect_timeout": 60.0}) as C:
        run_id = C.lab.create_run()
        started = time.perf_counter()
        await asyncio.to_thread(dispatch, C.lab.engine, C.app, run_id)
        await asyncio.wait_for(follow(C.lab.engine, C.app, run_id, every=0.5), timeout=600)
        wall = time.perf_counter() - started
        jobs = C.lab.jobs(run_id)
        outcomes = Counter(f"{j.status}:{j.error_type}" for j in jobs.values())
        sessions = []
        for name, job in jobs.items():
            connect = C.lab.steps(run_id, name).get("connect")
            if connect is not None and job.ended_at is not None:
                sessions.append((connect.started_at.timestamp(), job.ended_at.timestamp()))
    engine.dispose()
    return peak_concurrency(sessions), wall, outcomes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--latency-ms", type=int, default=1500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    peaks = []
    with contextlib.contextmanager(pg_server.__wrapped__)() as pg:
        for i in range(args.repeat):
            base = Path(tempfile.mkdtemp(prefix="macfleet-bench-sessions-"))
            url = pg.url(pg.create_database())
            peak, wall, outcomes = asyncio.run(one(base, url, args.hosts, args.latency_ms))
            peaks.append(peak)
            print(f"run {i + 1}: peak {peak} sessions at once in one worker; {wall:.1f} s; {dict(outcomes)}",
                  flush=True)  # fmt: skip
    middle = statistics.median(peaks)
    print(f"median peak over {args.repeat} runs: {middle:g} of {args.hosts} (target >= 200)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
