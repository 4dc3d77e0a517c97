"""`orchestrate db upgrade|current|path` on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import orchestrator.cli
from orchestrator.config import reset_logging
from orchestrator.state.db import create_db_engine, current_revision, head_revision

orchestrator.cli._register()
runner = CliRunner()


def run(*args: str, code: int = 0) -> tuple[str, str]:
    res = runner.invoke(orchestrator.cli.app, list(args))
    assert res.exit_code == code, f"exit {res.exit_code}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return res.stdout, res.stderr


@pytest.fixture(autouse=True)
def _logging() -> Iterator[None]:
    yield
    reset_logging()


def test_upgrade_then_current(orchestrate_env: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATE_DATABASE_URL", db_url)
    out, _ = run("db", "current", "--json")
    assert json.loads(out)["current"] is None
    assert json.loads(out)["up_to_date"] is False
    out, _ = run("db", "current")
    assert "(empty: run `orchestrate db upgrade`)" in out

    out, _ = run("db", "upgrade", "--json")
    data = json.loads(out)
    assert (data["from"], data["to"], data["changed"]) == (None, head_revision(), True)
    engine = create_db_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    out, _ = run("db", "upgrade")
    assert f"is already at the newest revision {head_revision()}" in out
    out, _ = run("db", "current", "--json")
    assert json.loads(out) | {"url": None} == {
        "url": None, "current": head_revision(), "head": head_revision(), "up_to_date": True,
    }  # fmt: skip
    assert "macfleet-test-pw" not in out  # the URL is shown without its password


def test_path_default_is_under_xdg_data_home(orchestrate_env: Path) -> None:
    out, _ = run("db", "path")
    assert out.strip() == str(orchestrate_env / "macfleet.db")
    run("db", "upgrade")
    out, _ = run("db", "path", "--json")
    assert json.loads(out) == {"path": str(orchestrate_env / "macfleet.db"), "exists": True}


def test_path_from_config_file(orchestrate_env: Path, tmp_path: Path) -> None:
    (tmp_path / "orchestrate.toml").write_text(f'database_url = "sqlite:///{tmp_path}/elsewhere.db"\n')
    out, _ = run("db", "path")
    assert out.strip() == f"{tmp_path}/elsewhere.db"


def test_path_on_postgresql_is_refused(orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATE_DATABASE_URL", "postgresql://u:hunter2@127.0.0.1:1/db")
    _, err = run("db", "path", code=1)
    assert "not a SQLite file: postgresql+psycopg://u:***@127.0.0.1:1/db" in err
    assert "hunter2" not in err


def test_unreachable_postgresql_is_a_clear_error(
    orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(
        "ORCHESTRATE_DATABASE_URL", f"postgresql://u:hunter2@127.0.0.1:{port}/db?connect_timeout=2"
    )
    _, err = run("db", "upgrade", code=2)
    assert f"cannot use the database postgresql+psycopg://u:***@127.0.0.1:{port}/db" in err
    assert "Connection refused" in err or "connection failed" in err
    assert "hunter2" not in err
    assert "Traceback" not in err


def test_bad_config_is_exit_2(orchestrate_env: Path, tmp_path: Path) -> None:
    (tmp_path / "orchestrate.toml").write_text("executor = 'kubernetes'\n")
    _, err = run("db", "current", code=2)
    assert "executor: Input should be 'local' or 'celery'" in err
