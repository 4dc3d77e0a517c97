"""Celery benchmark: publishing device jobs to the broker; a fleet install through Celery vs the local driver.

    .venv/bin/python bench/celery.py --quick              # publish 2,000 jobs x 3; 50 Macs x 2 MB, once each
    .venv/bin/python bench/celery.py                      # publish 10,000 jobs x 5; 1000 Macs x 5 MB x 1
    .venv/bin/python bench/celery.py --only publish --jobs 10000 --repeat 7
    .venv/bin/python bench/celery.py --only fleet --hosts 1000 --dmg-mb 5 --concurrency 100 --repeat 2

Everything runs on real servers this script starts on private loopback ports and stops by PID: a
redis-server with a password (AOF on; `appendfsync everysec` as docker-compose runs it, or `--fsync always`
as the tests run it: every write waits for the disk) and a PostgreSQL server (the tests' own helpers,
`tests/workers/celery_support.py` and `tests/conftest.py`).

publish: a run of N device jobs (one wave) in PostgreSQL; timed is the dispatcher's real path,
`workers.celery_dispatch.publish_wave` (one conditional UPDATE ... RETURNING, the device names, then one
`send_task` per job on one producer, with the task-sent event Flower needs). Baselines in the same process
on the same Redis: `app.send_task` of the same N messages without the database, and redis-py LPUSH of N
payloads of the same size as a real message (one round trip each, and pipelined). Between repeats the
jobs go back to pending and the broker database is emptied. Target (issue 6): 10,000 jobs <= 10 s.

fleet: the same fleet spec, database (copied to PostgreSQL) and DMG for both drivers (bench/deploy.py's
bed: `python -m macsim serve` in ANOTHER process, started and stopped by PID; every Mac empty before each
phase, what it received removed after): the local driver (`workers.local.drive`, in this process) with
`--concurrency` C, then Celery with 2 `celery worker` processes (threads pool, C/2 threads each, so the same
C sessions in all) fed by `dispatch` and followed from the database by `follow` (as `orchestrate deploy
--executor celery` does). Wall time from dispatch to the run's end; per device, the job's recorded
started..ended (median, p95); CPU seconds of this process, the workers and the fleet. Free disk is checked
first and the fleet scaled down (printed) when it does not fit.

Not a test: the figures depend on the machine (2 cores here, shared by the fleet, workers and database).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# `python bench/celery.py` puts bench/ first on sys.path, where this file would shadow the celery package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import insert, update  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import Session, SQLModel, col, select  # noqa: E402

from bench.deploy import Bed, Scenario, build_bed, cpu_of, fit_to_disk, measure, pct  # noqa: E402
from orchestrator.config import CelerySettings, DeploySettings, Settings  # noqa: E402
from orchestrator.state.db import create_db_engine, init_schema  # noqa: E402
from orchestrator.state.models import Device, DeviceJob, JobStatus, Run, RunStatus  # noqa: E402
from tests.conftest import pg_server  # noqa: E402
from tests.workers.celery_support import Redis, Worker, start_worker  # noqa: E402
from workers.celery_app import make_app  # noqa: E402
from workers.celery_config import DEVICE_QUEUE, DEVICE_TASK, MacfleetCelery  # noqa: E402
from workers.celery_dispatch import dispatch, follow, publish_wave  # noqa: E402

REDIS_PASSWORD = "bench-redis-pw-3Kd"  # a throwaway password of a private loopback server
PUBLISH_TARGET_S = 10.0
WORKERS = 2


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


@contextlib.contextmanager
def servers(base: Path, fsync: str) -> Iterator[tuple[Redis, Any]]:
    """A redis-server (AOF on, appendfsync as given) and a PostgreSQL server (the tests' helpers), stopped
    by PID at the end."""
    redis = Redis(base / "redis", REDIS_PASSWORD).start()
    redis.client().config_set("appendfsync", fsync)
    try:
        with contextlib.contextmanager(pg_server.__wrapped__)() as pg:
            yield redis, pg
    finally:
        redis.stop()


def celery_settings(settings: Settings, redis: Redis, **over: Any) -> Settings:
    return settings.model_copy(update={
        "celery": CelerySettings(broker_url=redis.url(0), password=REDIS_PASSWORD, **over),
    })  # fmt: skip


# ------------------------------------------------------------------ publish


def seed_run(engine: Engine, n: int) -> str:
    """n devices and a running install run with one pending job each (wave 0); returns the run id."""
    with Session(engine) as s:
        s.connection().execute(insert(Device), [
            {"id": f"dev{i:06d}", "name": f"mac-{i:06d}", "address": "10.0.0.1", "port": 22, "user": "admin"}
            for i in range(n)
        ])  # fmt: skip
        run = Run(kind="install", status=RunStatus.RUNNING.value, executor="celery", created_by="bench")
        s.add(run)
        s.flush()
        s.connection().execute(insert(DeviceJob), [
            {"id": f"job{i:06d}", "run_id": run.id, "device_id": f"dev{i:06d}", "wave": 0}
            for i in range(n)
        ])  # fmt: skip
        s.commit()
        return str(run.id)


def reset(engine: Engine, redis: Redis, run_id: str) -> None:
    with Session(engine) as s:
        s.connection().execute(
            update(DeviceJob).where(col(DeviceJob.run_id) == run_id).values(status=JobStatus.PENDING.value)
        )
        s.commit()
    redis.client(0).flushdb()


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_publish(base: Path, redis: Redis, pg: Any, n: int, repeat: int) -> list[str]:
    url = pg.url(pg.create_database())
    engine = create_db_engine(url)
    init_schema(engine)
    settings = celery_settings(Settings(data_dir=base / "data", database_url=url), redis)
    app = make_app(settings, tasks=False)
    t0 = time.perf_counter()
    run_id = seed_run(engine, n)
    print(f"[publish] seeded {n} devices and jobs in {time.perf_counter() - t0:.1f} s", flush=True)
    with Session(engine) as s:
        q = select(DeviceJob.id, DeviceJob.device_id).where(DeviceJob.run_id == run_id)
        jobs = [(j, f"mac-{d[3:]}") for j, d in s.exec(q).all()]
    queue = redis.client(0)

    quiet = make_app(settings, tasks=False)
    quiet.conf.task_send_sent_event = False  # what the task-sent event (Flower's "sent" state) costs

    def sender(a: MacfleetCelery) -> Callable[[], None]:
        def send() -> None:
            with a.producer_or_acquire() as producer:
                for job_id, name in jobs:
                    a.send_task(DEVICE_TASK, args=(run_id, job_id, name), producer=producer)

        return send

    reset(engine, redis, run_id)
    assert publish_wave(engine, app, run_id, 0) == n  # warm-up (connections, caches); its message: the sample
    payload = queue.lindex(DEVICE_QUEUE, 0)
    assert payload is not None and run_id.encode() in payload
    print(f"[publish] one device job message: {len(payload)} bytes on the queue", flush=True)

    def lpush_each() -> None:
        for _ in range(n):
            queue.lpush("bench.lpush", payload)

    def lpush_pipelined() -> None:
        pipe = queue.pipeline(transaction=False)
        for i in range(n):
            pipe.lpush("bench.lpush", payload)
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()

    keys = ("dispatch", "send_task", "send_task-no-event", "lpush", "lpush-pipe")
    results: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(repeat):
        reset(engine, redis, run_id)
        results["dispatch"].append(timed(lambda: publish_wave(engine, app, run_id, 0)))
        assert queue.llen(DEVICE_QUEUE) == n, queue.llen(DEVICE_QUEUE)
        reset(engine, redis, run_id)
        results["send_task"].append(timed(sender(app)))
        assert queue.llen(DEVICE_QUEUE) == n
        reset(engine, redis, run_id)
        results["send_task-no-event"].append(timed(sender(quiet)))
        assert queue.llen(DEVICE_QUEUE) == n
        redis.client(0).flushdb()
        results["lpush"].append(timed(lpush_each))
        redis.client(0).flushdb()
        results["lpush-pipe"].append(timed(lpush_pipelined))
        took = ", ".join(f"{k} {v[-1]:.2f} s" for k, v in results.items())
        print(f"[publish] repeat {r + 1}/{repeat}: {took}", flush=True)
    reset(engine, redis, run_id)
    engine.dispose()
    d = med(results["dispatch"])
    rows = [
        f"| what (N = {n}, {repeat} repeats) | median s | jobs/s | dispatch / this |",
        "|---|---|---|---|",
    ]
    labels = {
        "dispatch": "publish_wave: UPDATE..RETURNING, names, send_task + sent event, pipelined by 500",
        "send_task": "app.send_task of the same messages (no database)",
        "send_task-no-event": "app.send_task, task_send_sent_event off (no database)",
        "lpush": "redis-py LPUSH of same-size payloads, one round trip each",
        "lpush-pipe": "redis-py LPUSH of same-size payloads, pipelined by 1000",
    }
    for k, v in results.items():
        m = med(v)
        rows.append(f"| {labels[k]} | {m:.2f} | {n / m:,.0f} | {d / m:.2f} |")
    verdict = "ok" if d * 10_000 / n <= PUBLISH_TARGET_S else "OVER"
    rows.append(f"target: 10,000 jobs <= {PUBLISH_TARGET_S:.0f} s -> {d * 10_000 / n:.2f} s for 10,000 "
                f"({verdict})")
    return rows


# ------------------------------------------------------------------ fleet


def copy_database(src: Engine, dst: Engine) -> None:
    """Every row of src into dst (same schema), parents first."""
    with src.connect() as a, dst.begin() as b:
        for table in SQLModel.metadata.sorted_tables:
            rows = [dict(r._mapping) for r in a.execute(table.select())]
            if rows:
                b.execute(table.insert(), rows)


def job_durations(engine: Engine, run_id: str) -> tuple[list[float], Counter[str]]:
    with Session(engine) as s:
        jobs = s.exec(select(DeviceJob).where(DeviceJob.run_id == run_id)).all()
    durations = [(j.ended_at - j.started_at).total_seconds() for j in jobs if j.started_at and j.ended_at]
    return durations, Counter(j.status for j in jobs)


@dataclass
class Result:
    driver: str
    wall: float
    durations: list[float]
    counts: Counter[str]
    cpu: float  # this process (local) or the workers (celery)
    fleet_cpu: float


def celery_phase(bed: Bed, app: MacfleetCelery, workers: list[Worker]) -> Result:
    bed.fleet.wipe()
    bed.fleet.start(bed.sc.hosts)
    try:
        run_id = bed.create_run()
        fleet0, w0 = cpu_of(bed.fleet.pid), sum(cpu_of(w.proc.pid) for w in workers)
        t0 = time.perf_counter()
        dispatch(bed.engine, app, run_id)
        run = asyncio.run(follow(bed.engine, app, run_id, every=0.5, watchdog=5.0))
        wall = time.perf_counter() - t0
        cpu = sum(cpu_of(w.proc.pid) for w in workers) - w0
        fleet_cpu = cpu_of(bed.fleet.pid) - fleet0
        assert run is not None
        if run.status != RunStatus.SUCCEEDED.value:
            print(f"  celery run ended {run.status}: {run.halt_reason}", flush=True)
    finally:
        received = bed.fleet.received()
        bed.fleet.stop()
        removed = bed.fleet.wipe()
    durations, counts = job_durations(bed.engine, run_id)
    print(f"  celery  wall {wall:7.2f} s  workers cpu {cpu:7.2f} s  fleet cpu {fleet_cpu:7.2f} s  "
          f"{dict(counts)}  fleet held {received / 1e6:.0f} MB (removed {removed / 1e6:.0f} MB)", flush=True)
    return Result("celery", wall, durations, counts, cpu, fleet_cpu)


def local_phase(bed: Bed, concurrency: int) -> Result:
    before = {r.id for r in _runs(bed.engine)}
    phase = measure(bed, "deploy", concurrency, None)  # bench/deploy.py: fresh fleet, drive(), stop, wipe
    run_id = next(r.id for r in _runs(bed.engine) if r.id not in before)
    durations, counts = job_durations(bed.engine, run_id)
    return Result("local", phase.wall, durations, counts, phase.cpu, phase.fleet_cpu)


def _runs(engine: Engine) -> list[Run]:
    with Session(engine) as s:
        return list(s.exec(select(Run)).all())


def bench_fleet(base: Path, redis: Redis, pg: Any, sc0: Scenario, concurrency: int, repeat: int) -> list[str]:
    sc = fit_to_disk(sc0, base)
    (base / sc.label).mkdir(parents=True, exist_ok=True)
    bed = build_bed(sc, base / sc.label)
    url = pg.url(pg.create_database())
    engine = create_db_engine(url)
    init_schema(engine)
    copy_database(bed.engine, engine)  # the same seeded bed, on PostgreSQL (shared by the worker processes)
    bed.engine.dispose()
    bed.engine = engine
    bed.settings = celery_settings(
        bed.settings.model_copy(update={"database_url": engine.url.render_as_string(hide_password=False),
                                        "deploy": DeploySettings(verify_timeout=120.0)}),
        redis, task_time_limit=1800.0, worker_concurrency=max(1, concurrency // WORKERS),
    )  # fmt: skip
    app = make_app(bed.settings, tasks=False)
    threads = max(1, concurrency // WORKERS)
    workers = [start_worker(base / "workers", f"w{i}", bed.settings, threads) for i in range(WORKERS)]
    results: list[Result] = []
    try:
        for w in workers:
            w.ready(60)
        for r in range(repeat):
            print(f"[{sc.label}] repeat {r + 1}/{repeat}: local driver (c={concurrency}), then Celery "
                  f"({WORKERS} workers x {concurrency // WORKERS} threads)", flush=True)  # fmt: skip
            results.append(local_phase(bed, concurrency))
            results.append(celery_phase(bed, app, workers))
    finally:
        for w in workers:
            w.stop()
        bed.fleet.stop()
        engine.dispose()
        shutil.rmtree(base / sc.label, ignore_errors=True)
    local = [x for x in results if x.driver == "local"]
    cel = [x for x in results if x.driver == "celery"]
    rows = [
        f"| {sc.label}, c={concurrency} ({len(local)} repeat(s)) | wall s | device median s | device p95 s "
        "| driver CPU ms/dev | fleet CPU ms/dev | outcomes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, xs in (("local driver (this process)", local), (f"Celery, {WORKERS} workers", cel)):
        outcomes = sum((x.counts for x in xs), Counter())
        rows.append(
            f"| {name} | {med([x.wall for x in xs]):.2f} | {med([med(x.durations) for x in xs]):.2f} "
            f"| {med([pct(x.durations, 0.95) for x in xs]):.2f} "
            f"| {med([x.cpu for x in xs]) / sc.hosts * 1000:.1f} "
            f"| {med([x.fleet_cpu for x in xs]) / sc.hosts * 1000:.1f} | {dict(outcomes)} |"
        )  # fmt: skip
    pairs = list(zip(cel, local, strict=True))
    ratio = med([c.wall / lo.wall for c, lo in pairs])
    dev = med([med(c.durations) / med(lo.durations) for c, lo in pairs])
    rows.append(f"ratio celery/local: wall {ratio:.2f}, device median {dev:.2f}")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2,000 jobs x 3; 50 Macs x 2 MB once")
    ap.add_argument("--only", choices=("publish", "fleet"), default=None)
    ap.add_argument("--jobs", type=int, default=None, help="device jobs to publish (default 10,000)")
    ap.add_argument("--hosts", type=int, default=None, help="simulated Macs (default 1000)")
    ap.add_argument("--dmg-mb", type=int, default=None, help="DMG size in MB (default 5)")
    ap.add_argument("--concurrency", type=int, default=100, help="sessions at once, in all (default 100)")
    ap.add_argument("--repeat", type=int, default=None, help="publish (5) / fleet (1) repeats")
    ap.add_argument("--fsync", choices=("everysec", "always"), default="everysec",
                    help="Redis appendfsync (default everysec, as in docker-compose; the tests use always)")
    ap.add_argument("--workdir", type=Path, default=None, help="where the servers and the fleet live")
    args = ap.parse_args()
    jobs = args.jobs or (2_000 if args.quick else 10_000)
    sc = Scenario(args.hosts or (50 if args.quick else 1000), args.dmg_mb or (2 if args.quick else 5))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    root = args.workdir or Path(tempfile.mkdtemp(prefix="macfleet-bench-celery-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"bench pid {os.getpid()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, Redis AOF "
          f"appendfsync {args.fsync}, work dir {root}", flush=True)
    tables: list[str] = []
    try:
        with servers(root, args.fsync) as (redis, pg):
            if args.only in (None, "publish"):
                tables += [*bench_publish(root, redis, pg, jobs, args.repeat or (3 if args.quick else 5)), ""]
                print("\n".join(tables), flush=True)
            if args.only in (None, "fleet"):
                fleet_repeat = 1 if args.quick else (args.repeat or 1)
                tables += bench_fleet(root, redis, pg, sc, args.concurrency, fleet_repeat)
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print("\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
