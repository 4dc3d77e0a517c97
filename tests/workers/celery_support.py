"""Real processes for the Celery tests: a password-protected redis-server on a free loopback port (AOF on, as
docker-compose runs it) and `celery worker` processes, each started and ended by its PID; and helpers to read
everything Redis holds and what macsim's command logs say about overlapping executions."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from orchestrator.config import CelerySettings, DeploySettings, Settings
from tests.workers.lab import Lab, lab
from workers.celery_app import make_app
from workers.celery_config import MacfleetCelery

REDIS_SERVER = "/usr/bin/redis-server"
ROOT = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).parent / "celery"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_pid(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@dataclass
class Redis:
    """A redis-server we started (AOF on so a restart keeps the queues, as in docker-compose)."""

    base: Path
    password: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Redis:
        if not Path(REDIS_SERVER).exists():
            pytest.fail(f"{REDIS_SERVER} not found: run scripts/setup (as root it installs redis-server)")
        self.base.mkdir(parents=True, exist_ok=True)
        conf = self.base / "redis.conf"  # the password in a 0600 file, not in argv
        conf.write_text(f"requirepass {self.password}\n")
        conf.chmod(0o600)
        self.proc = subprocess.Popen(
            [REDIS_SERVER, str(conf), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.base),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
             "--logfile", str(self.base / "redis.log"), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return self
            except Exception:
                time.sleep(0.05)
        pytest.fail(f"redis-server did not start: {(self.base / 'redis.log').read_text()[-1000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            _stop_pid(self.proc)  # SIGTERM: redis writes its AOF and exits

    def restart(self, downtime: float = 1.0) -> None:
        self.stop()
        time.sleep(downtime)
        self.start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"  # the password travels in ORCHESTRATE_CELERY__PASSWORD

    def client(self, db: int = 0) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, db=db, socket_timeout=5)

    def dump(self) -> str:
        """Every key and value of every database, as text (to look for secrets)."""
        out: list[str] = []
        info = self.client().info("keyspace")
        for dbname in info:
            c = self.client(int(str(dbname)[2:]))
            for key in c.scan_iter(count=1000):
                kind = c.type(key).decode()
                if kind == "string":
                    val: Any = c.get(key)
                elif kind == "list":
                    val = c.lrange(key, 0, -1)
                elif kind == "hash":
                    val = c.hgetall(key)
                elif kind == "set":
                    val = c.smembers(key)
                elif kind == "zset":
                    val = c.zrange(key, 0, -1, withscores=True)
                else:
                    val = kind
                out.append(f"{dbname} {key!r} {val!r}")
        return "\n".join(out)

    def monitor(self, path: Path) -> subprocess.Popen[bytes]:
        """`redis-cli MONITOR` into path (every command Redis receives); stop it with stop_process()."""
        env = {**os.environ, "REDISCLI_AUTH": self.password}
        with open(path, "wb") as f:
            return subprocess.Popen(["redis-cli", "-p", str(self.port), "monitor"], stdout=f,
                                    stderr=subprocess.STDOUT, env=env)  # fmt: skip


def settings_env(settings: Settings) -> dict[str, str]:
    """The ORCHESTRATE_* environment that gives a worker these settings."""
    env: dict[str, str] = {}

    def put(prefix: str, data: dict[str, Any]) -> None:
        for k, v in data.items():
            if v is None:
                continue
            name = f"{prefix}{k.upper()}"
            if isinstance(v, dict):
                put(name + "__", v)
            elif isinstance(v, (list, bool)):
                env[name] = json.dumps(v)
            else:
                env[name] = str(v)

    put("ORCHESTRATE_", settings.model_dump(mode="json"))
    return env


@dataclass
class Worker:
    """A `celery worker` process we started (threads pool), its log in a file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def ready(self, timeout: float = 30) -> Worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"worker {self.name} exited: {self.log.read_text()[-3000:]}")
            if self.log.exists() and " ready." in self.log.read_text():
                return self
            time.sleep(0.1)
        pytest.fail(f"worker {self.name} not ready: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        _stop_pid(self.proc, signal.SIGKILL)

    def stop(self) -> None:
        _stop_pid(self.proc, signal.SIGTERM, timeout=20)


def process_env(base: Path, settings: Settings | None = None, **extra: str) -> dict[str, str]:
    """The whole environment of a celery or orchestrate subprocess: a bare PATH, HOME and an empty config
    file in base (nothing of the developer's leaks in), this checkout importable, the settings as
    ORCHESTRATE_* variables, then `extra`."""
    base.mkdir(parents=True, exist_ok=True)
    config = base / "orchestrate.toml"
    config.touch()
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(base),
        "ORCHESTRATE_CONFIG": str(config),
        "PYTHONPATH": str(ROOT),
        **(settings_env(settings) if settings is not None else {}),
        **extra,
    }


def start_worker(base: Path, name: str, settings: Settings, concurrency: int = 200) -> Worker:
    env = process_env(base, settings)
    log = base / f"{name}.log"
    with open(base / f"{name}.out", "wb") as out:
        proc = subprocess.Popen(
            [str(CELERY), "-A", "workers.celery_app", "worker", "-P", "threads", "-c", str(concurrency),
             "-n", f"{name}@%h", "-E", "--loglevel=INFO", "--without-mingle", "--without-gossip",
             "--logfile", str(log)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return Worker(name, proc, log)


@dataclass
class Workers:
    items: list[Worker] = field(default_factory=list)

    def __iter__(self) -> Iterator[Worker]:
        return iter(self.items)

    def stop(self) -> None:
        for w in self.items:
            w.stop()


def exec_intervals(state_dir: Path) -> list[tuple[float, float, str]]:
    """(started, ended, command) of every finished exec a macsim host logged."""
    path = state_dir / "commands.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            out.append((float(r["started"]), float(r["ended"]), str(r["command"])))
    return out


def overlapping(intervals: list[tuple[float, float, str]]) -> list[tuple[str, str]]:
    """Pairs of executions on one host that ran at the same time."""
    found = []
    ordered = sorted(intervals)
    for i, (s1, e1, c1) in enumerate(ordered):
        for s2, _e2, c2 in ordered[i + 1 :]:
            if s2 >= e1:
                break
            found.append((c1, c2))
    return found


def peak_concurrency(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda p: (p[0], p[1]))
    peak = now = 0
    for _, d in points:
        now += d
        peak = max(peak, now)
    return peak


REDIS_PASSWORD = "redis-test-pw-7Qx"  # a throwaway password of a private loopback server
SSH: dict[str, Any] = {"connect_timeout": 5.0, "command_timeout": 30.0, "keepalive_interval": 2.0,
                       "keepalive_count_max": 2}  # fmt: skip
LEASE_TTL = 4.0
@dataclass
class CeleryLab:
    lab: Lab
    redis: Redis
    workers: Workers
    app: MacfleetCelery
    settings: Settings


@asynccontextmanager
async def celery_lab(
    tmp_path: Path,
    engine: Engine,
    hosts: Sequence[dict[str, Any]],
    *,
    workers: int = 2,
    backend: bool = False,
    visibility: float = 90.0,
    ssh: dict[str, Any] | None = None,
) -> AsyncIterator[CeleryLab]:
    """Redis, the lab, and worker processes with short leases; `visibility` is Redis's visibility timeout
    (short in the kill test so the dead worker's reserved tasks come back quickly)."""
    redis = Redis(tmp_path / "redis", REDIS_PASSWORD).start()
    try:
        async with lab(tmp_path, engine, hosts, ssh={**SSH, **(ssh or {})}) as L:
            settings = L.settings.model_copy(update={
                "database_url": engine.url.render_as_string(hide_password=False),  # str(url) masks it
                "deploy": DeploySettings(lease_ttl=LEASE_TTL, verify_timeout=20.0),
                "celery": CelerySettings(
                    broker_url=redis.url(0), result_backend=redis.url(1) if backend else None,
                    password=REDIS_PASSWORD, task_time_limit=60.0, visibility_timeout=visibility, restore_interval=1.0,
                    publish_retries=20,
                ),
            })  # fmt: skip
            ws = Workers([start_worker(tmp_path / "workers", f"w{i}", settings) for i in range(workers)])
            try:
                for w in ws:
                    await asyncio.to_thread(w.ready)
                yield CeleryLab(L, redis, ws, make_app(settings, tasks=False), settings)
            finally:
                await asyncio.to_thread(ws.stop)
    finally:
        redis.stop()


