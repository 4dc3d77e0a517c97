"""Flower against the Celery driver: a real redis-server (password), two `celery worker` processes, PostgreSQL,
a small macsim fleet, and `celery -A workers.celery_app flower` started and stopped by PID, as in
docker-compose: basic auth (from FLOWER_BASIC_AUTH, out of argv), read-only mode, loopback only.

Through Flower's API (with the credentials) the run's device jobs are there with readable arguments (run id,
job id, device name) and a readable result; no secret is in any response (the canary PFX passwords, the
Redis password, the Fernet key); a request without (or with wrong) credentials gets 401; read-only mode
refuses to send a task or shut a worker down (403).
"""

from __future__ import annotations

import ast
import asyncio
import base64
import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from orchestrator.config import Settings
from orchestrator.state.models import RunStatus
from tests.workers.celery_support import (
    CELERY,
    REDIS_PASSWORD,
    _stop_pid,
    celery_lab,
    free_port,
    process_env,
)
from workers.celery_dispatch import dispatch, follow

pytestmark = [pytest.mark.parametrize("db_url", ["postgresql"], indirect=True), pytest.mark.timeout(120)]

HOSTS = [{"name": f"mac-{i:02d}", "arch": "x86_64" if i % 2 else "arm64", "rosetta": True} for i in range(4)]
USER = "ops"


class Flower:
    def __init__(self, port: int, password: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.port, self.password, self.proc, self.log = port, password, proc, log

    def request(self, path: str, *, auth: tuple[str, str] | None = None, method: str = "GET",
                body: dict[str, Any] | None = None) -> tuple[int, str]:  # fmt: skip
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        if auth is not None:
            req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def get(self, path: str) -> Any:
        status, text = self.request(path, auth=(USER, self.password))
        assert status == 200, (path, status, text[:500])
        return json.loads(text)


@contextmanager
def flower(base: Path, settings: Settings) -> Iterator[Flower]:
    """`celery -A workers.celery_app flower` on a free loopback port, basic auth and read-only from the
    environment (FLOWER_UNAUTHENTICATED_API not set), stopped by PID."""
    port, password = free_port(), secrets.token_urlsafe(18)
    env = process_env(base, settings, FLOWER_BASIC_AUTH=f"{USER}:{password}", FLOWER_READ_ONLY="true")
    log = base / "flower.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(CELERY), "-A", "workers.celery_app", "flower", f"--port={port}", "--address=127.0.0.1"],
            cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    f = Flower(port, password, proc, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if f.request("/healthcheck")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        yield f
    finally:
        _stop_pid(proc)


def _wait_for_workers(f: Flower, n: int) -> None:
    """Until Flower's event receiver has seen n workers alive (their heartbeats), so it sees every task event."""
    deadline = time.monotonic() + 20
    while sum(f.get("/api/workers?status=true").values()) < n:
        assert time.monotonic() < deadline, f.log.read_text()[-3000:]
        time.sleep(0.2)


async def test_flower_shows_the_runs_device_jobs_with_auth_read_only_and_no_secret(
    tmp_path: Path, engine: Engine
) -> None:
    async with celery_lab(tmp_path, engine, HOSTS, workers=2) as C:
        L = C.lab
        canaries = [L.certs.password_for(p) for p in L.certs.host_pfx.values()]
        assert L.settings.secret_key is not None
        secret_values = [*canaries, REDIS_PASSWORD, L.settings.secret_key]
        with flower(tmp_path / "flower", C.settings) as f:
            await asyncio.to_thread(_wait_for_workers, f, 2)
            run_id = L.create_run()
            await asyncio.to_thread(dispatch, L.engine, C.app, run_id)
            run = await asyncio.wait_for(follow(L.engine, C.app, run_id, every=0.2, watchdog=2.0), timeout=60)
            assert run is not None and run.status == RunStatus.SUCCEEDED, (run and run.status, run and run.halt_reason)
            jobs = {name: j.id for name, j in L.jobs(run_id).items()}

            deadline = time.monotonic() + 10  # the succeeded events reach Flower just after the database
            while True:
                tasks = f.get("/api/tasks?taskname=macfleet.device_job")
                done = {t["uuid"]: t for t in tasks.values() if t["state"] == "SUCCESS"}
                if len(done) >= len(HOSTS) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert len(done) == len(HOSTS), json.dumps(tasks, indent=1)[:3000]
            seen: dict[str, str] = {}
            for t in done.values():
                args = ast.literal_eval(t["args"])  # Flower shows the args as their repr: ids and a name
                assert len(args) == 3 and args[0] == run_id, t
                seen[args[2]] = args[1]
                assert t["worker"].split("@")[0] in ("w0", "w1") and t["received"] and t["started"], t
                assert "succeeded" in (t["result"] or ""), t
            assert seen == jobs  # every device, its own job id
            assert {t["worker"].split("@")[0] for t in done.values()} <= {"w0", "w1"}

            # one task's detail, the worker list (it inspects the workers' configuration), the queues
            one = next(iter(done))
            detail = f.get(f"/api/task/info/{one}")
            assert detail["name"] == "macfleet.device_job" and run_id in detail["args"]
            bodies = [json.dumps(tasks), json.dumps(detail), json.dumps(f.get("/api/workers?refresh=true")),
                      json.dumps(f.get("/api/queues/length")), json.dumps(f.get("/api/task/types"))]  # fmt: skip
            assert "w0@" in bodies[2] and "macfleet.devices" in bodies[2]
            # the UI pages too (rendered with the same credentials)
            for page in ("/", "/tasks", f"/task/{one}", "/broker"):
                status, text = f.request(page, auth=(USER, f.password))
                assert status == 200, (page, status, text[:300])
                bodies.append(text)
            status, metrics = f.request("/metrics")  # Flower serves /metrics without auth: counters only
            assert status == 200 and "flower_events_total" in metrics
            assert run_id not in metrics and "mac-00" not in metrics
            bodies.append(metrics)
            for body in bodies:
                for value in secret_values:
                    assert value not in body, "a secret is in a Flower response"

            # no credentials, wrong credentials: 401, on the API and the UI
            for path in ("/api/tasks", "/api/workers", f"/api/task/info/{one}", "/", "/tasks"):
                assert f.request(path)[0] == 401, path
                assert f.request(path, auth=(USER, "not-the-password"))[0] == 401, path
                assert f.request(path, auth=("admin", f.password))[0] == 401, path
            # read-only: no task sent, no worker shut down, nothing revoked (even with the credentials)
            worker = next(iter(done.values()))["worker"]
            ops: list[tuple[str, dict[str, Any] | None]] = [
                ("/api/task/async-apply/macfleet.device_job", {"args": [run_id, jobs["mac-00"], "mac-00"]}),
                ("/api/task/send-task/macfleet.advance_run", {"args": [run_id]}),
                (f"/api/task/revoke/{one}", None),
                (f"/api/worker/shutdown/{worker}", None),
                (f"/api/worker/pool/shrink/{worker}", None),
            ]
            for path, payload in ops:
                status, text = f.request(path, auth=(USER, f.password), method="POST", body=payload)
                assert status == 403 and "read only" in text.lower(), (path, status, text[:300])
                assert f.request(path, method="POST", body=payload)[0] == 401, path
            assert len(f.get("/api/tasks?taskname=macfleet.device_job")) == len(HOSTS)  # nothing was sent
            log = f.log.read_text()
            assert f.password not in log and all(v not in log for v in secret_values)
