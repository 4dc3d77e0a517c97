"""docker-compose.yml is for users with a Docker engine (none here): validate it with Debian's docker-compose,
which checks the file without an engine, and check the promises we make about it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
SECRETS = {
    "REDIS_PASSWORD": "r-pw",
    "POSTGRES_PASSWORD": "pg-pw",
    "ORCHESTRATE_SECRET_KEY": "k",
    "FLOWER_USER": "ops",
    "FLOWER_PASSWORD": "f-pw",
}


def _compose(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is not installed: run scripts/setup (it installs Debian's docker-compose)")
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [exe, "-f", str(COMPOSE), "config", "-q"], env={**clean, **env}, capture_output=True, text=True, cwd=ROOT
    )


def test_compose_file_is_valid_with_the_secrets_given() -> None:
    r = _compose(SECRETS)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_each_secret_is_required_and_named(missing: str) -> None:
    r = _compose({k: v for k, v in SECRETS.items() if k != missing})
    assert r.returncode != 0
    assert f"set {missing}" in r.stderr


def test_no_default_secret_is_committed() -> None:
    text = COMPOSE.read_text()
    # ${VAR:-default} or ${VAR-default} on a secret would ship a password
    for var in SECRETS:
        assert not re.search(r"\$\{" + var + r":?-", text), var


def _config(*profiles: str) -> dict[str, Any]:
    """The file as docker-compose resolves it (anchors merged, variables put in)."""
    exe = shutil.which("docker-compose")
    assert exe is not None
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    args = [exe, "-f", str(COMPOSE), *(a for p in profiles for a in ("--profile", p)), "config"]
    r = subprocess.run(args, env={**clean, **SECRETS}, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = yaml.safe_load(r.stdout)
    return doc


def test_services_health_volumes_and_no_top_level_name() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    assert "name" not in raw  # docker-compose 1.29 rejects it
    doc = _config("demo")
    services = doc["services"]
    assert {"redis", "postgres", "controller", "worker", "flower", "macsim", "worker-demo"} <= set(services)
    for name in ("redis", "postgres", "worker", "flower"):
        assert "healthcheck" in services[name], name
    assert "inspect ping" in " ".join(services["worker"]["healthcheck"]["test"])
    assert {"artifacts", "redis-data", "pg-data"} <= set(doc["volumes"])
    assert any(v.startswith("pg-data:") for v in map(str, services["postgres"]["volumes"]))
    assert any(str(v).startswith("artifacts:/data") for v in services["worker"]["volumes"])
    assert services["macsim"]["profiles"] == ["demo"] and "profiles" not in services["worker"]
    assert services["worker-demo"]["network_mode"] == "service:macsim"  # macsim listens on loopback


def test_workers_scale_and_run_the_threads_pool_with_events() -> None:
    worker = _config()["services"]["worker"]
    cmd = worker["entrypoint"]
    assert cmd[:4] == ["celery", "-A", "workers.celery_app", "worker"]
    assert cmd[cmd.index("-P") + 1] == "threads" and cmd[cmd.index("-c") + 1] == "200" and "-E" in cmd
    assert "container_name" not in worker and "ports" not in worker  # `--scale worker=N` needs both absent
    assert worker["depends_on"]["controller"]["condition"] == "service_completed_successfully"


def test_flower_has_auth_read_only_and_listens_on_loopback_only() -> None:
    flower = _config()["services"]["flower"]
    env = flower["environment"]
    assert env["FLOWER_BASIC_AUTH"] == f"{SECRETS['FLOWER_USER']}:{SECRETS['FLOWER_PASSWORD']}"
    assert env["FLOWER_READ_ONLY"] == "true"
    assert "FLOWER_UNAUTHENTICATED_API" not in env
    assert not any("basic" in part or SECRETS["FLOWER_PASSWORD"] in part for part in flower["entrypoint"])
    assert all(str(p).startswith("127.0.0.1:") for p in flower["ports"]), flower["ports"]
    # Flower gets the broker and nothing else: no database URL, no secret key, no volume
    assert not {"ORCHESTRATE_DATABASE_URL", "ORCHESTRATE_SECRET_KEY"} & set(env) and not flower.get("volumes")


def test_passwords_stay_out_of_command_lines() -> None:
    services = _config("demo")["services"]
    for name, svc in services.items():
        argv = " ".join(map(str, (svc.get("command") or []) + (svc.get("entrypoint") or [])))
        for var in ("REDIS_PASSWORD", "POSTGRES_PASSWORD", "FLOWER_PASSWORD", "ORCHESTRATE_SECRET_KEY"):
            assert SECRETS[var] not in argv.split(), (name, var)


def test_the_image_installs_the_package_and_runs_as_a_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^RUN pip install --no-cache-dir \.", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "chown" in text  # the volumes' mount points belong to the user
