"""`orchestrate status` over 10,000 devices: the query + render in-process, and the whole CLI call.

    .venv/bin/python bench/status.py [--devices 10000] [--repeat 7] [--database-url URL]

Seeds a fresh database (SQLite in a temporary directory by default; pass a PostgreSQL URL to measure
that) with N devices in 10 groups, each with an installed version, a last run and for some a last error,
then times, over --repeat runs: `reports.device_status` + `render_status` in this process (target
<= 100 ms), and `orchestrate status --group all` as a new process (target <= 1 s). A baseline in the same
process: the bare `SELECT` of the device rows, the least any status report must cost. Prints medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, text
from sqlmodel import Session

from orchestrator import reports
from orchestrator.cli.status import render_status
from orchestrator.state.db import create_db_engine, init_schema
from orchestrator.state.models import Device, Group, GroupChild, GroupMember, Run, new_id, utcnow


def seed(url: str, n: int) -> None:
    engine = create_db_engine(url)
    init_schema(engine)
    now = utcnow()
    with Session(engine) as s:
        top = Group(id=new_id(), name="all")
        groups = [Group(id=new_id(), name=f"site-{i}") for i in range(10)]
        run = Run(id=new_id(), kind="install", status="failed", created_at=now)
        s.add_all([top, *groups, run])
        s.flush()
        s.add_all(GroupChild(parent_id=top.id, child_id=g.id) for g in groups)
        devices = []
        members = []
        for i in range(n):
            did = new_id()
            devices.append({
                "id": did, "name": f"mac-{i:05d}", "address": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                "port": 22, "vars_json": "{}", "created_at": now, "updated_at": now,
                "installed_version": ("8.0.2.5", "8.1.0.7", None)[i % 3], "connected": i % 7 != 0,
                "last_run_id": run.id, "last_outcome": "failed" if i % 50 == 0 else "succeeded",
                "last_error": "verify: NotConnected: no client certificate found" if i % 50 == 0 else None,
            })  # fmt: skip
            members.append({"group_id": groups[i % 10].id, "device_id": did})
        s.execute(insert(Device), devices)
        s.execute(insert(GroupMember), members)
        s.commit()
    engine.dispose()


BASELINE = "SELECT name, installed_version, connected, last_outcome, last_error FROM device"


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--database-url")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="macfleet-bench-status-"))
    url = args.database_url or f"sqlite:///{tmp / 'macfleet.db'}"
    t0 = time.perf_counter()
    seed(url, args.devices)
    print(f"seeded {args.devices} devices in {time.perf_counter() - t0:.1f} s ({url.split(':')[0]})")

    engine = create_db_engine(url)
    base, inproc, sizes = [], [], []
    for _ in range(args.repeat):
        with Session(engine) as s:
            t = time.perf_counter()
            s.execute(text(BASELINE)).all()
            base.append(time.perf_counter() - t)
        with Session(engine) as s:
            t = time.perf_counter()
            out = render_status(reports.device_status(s, ["all"], []))
            inproc.append(time.perf_counter() - t)
            sizes.append(len(out))
    env = {**os.environ, "ORCHESTRATE_DATABASE_URL": url, "ORCHESTRATE_CONFIG": str(tmp / "none.toml")}
    (tmp / "none.toml").write_text("")
    whole = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "orchestrator", "status", "--group", "all"], env=env,
                              capture_output=True, check=False)  # fmt: skip
        whole.append(time.perf_counter() - t)
        if done.returncode != 0:
            print(done.stderr.decode(), file=sys.stderr)
            return 1
    b, i, w = median_ms(base), median_ms(inproc), median_ms(whole)
    print(f"baseline SELECT of the device rows      median {b:8.1f} ms")
    ratio = f"{i / b:.1f}x baseline"
    print(f"status query + render, in-process       median {i:8.1f} ms  ({ratio}; target <= 100 ms)")
    print(f"`orchestrate status` as a new process   median {w:8.1f} ms  (target <= 1000 ms)")
    print(f"output {statistics.median(sizes) / 1024:.0f} KiB; {args.repeat} runs each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
