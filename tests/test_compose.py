"""docker-compose.yml is for users with a Docker engine (none here): validate it with Debian's docker-compose,
which checks the file without an engine, and check the promises we make about it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

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


def test_services_health_and_flower_auth() -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    assert {"redis", "postgres", "controller", "worker", "flower", "macsim"} <= set(services)
    for name in ("redis", "postgres", "worker"):
        assert "healthcheck" in services[name], name
    assert any("--basic-auth=" in part for part in services["flower"]["entrypoint"])
    assert {"artifacts", "redis-data", "pg-data"} <= set(doc["volumes"])
