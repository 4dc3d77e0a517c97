"""Shared fixtures: a real PostgreSQL server for the session, `db_url`/`engine` over SQLite and PostgreSQL,
and `orchestrate_env` that isolates a CLI test from the operator's own configuration.

The PostgreSQL server is started only when a test asks for it (one server per session, on 127.0.0.1 with a
free port and its socket in a private directory) and is stopped by its PID at session end.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy.engine import Engine

# CI runs the property tests with a fixed seed so a submission's result does not depend on luck; a developer's
# run explores new examples (and hypothesis replays any failure it finds from its database).
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

PG_ROLE = "macfleet"
PG_PASSWORD = "macfleet-test-pw"  # a throwaway role on a private loopback server; not a secret
_PG_SUPERUSER = "postgres"


@dataclass(frozen=True)
class PgServer:
    """A running test PostgreSQL server: superuser access through the socket, the test role over TCP."""

    pid: int
    port: int
    socket_dir: Path
    data_dir: Path

    def url(self, dbname: str) -> str:
        """A SQLAlchemy URL (psycopg 3) for the password role on database dbname, over 127.0.0.1."""
        return f"postgresql+psycopg://{PG_ROLE}:{PG_PASSWORD}@127.0.0.1:{self.port}/{dbname}"

    def admin(self) -> Any:
        """An autocommit psycopg connection as the superuser through the Unix socket."""
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=_PG_SUPERUSER, dbname="postgres", autocommit=True
        )

    def create_database(self, template: str = "template0") -> str:
        """Create a fresh database owned by the test role, a copy of template (default: empty); returns its
        name."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER {PG_ROLE} TEMPLATE "{template}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        which = shutil.which("initdb")
        if which:
            return Path(which).parent
        pytest.fail(
            "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb): run scripts/setup "
            "(as root it installs the postgresql package) — these tests need a real PostgreSQL server",
            pytrace=False,
        )
    # highest major version: sorted() on "/usr/lib/postgresql/NN" works for two-digit majors
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user() -> dict[str, Any]:
    """Popen arguments that drop root to the postgres user (PostgreSQL refuses to run as root).

    Popen's user= switches identity in the child before exec, so the PID we hold is the server itself
    (runuser/su would stay in between as the parent)."""
    if os.geteuid() != 0:
        return {}
    return {"user": _PG_SUPERUSER, "group": _PG_SUPERUSER, "extra_groups": []}


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL server for the whole session (fsync off, trust on the socket, SCRAM over TCP)."""
    bindir = _pg_bindir()
    base = Path(tempfile.mkdtemp(prefix="macfleet-pg-"))
    drop = _as_server_user()
    if drop:
        shutil.chown(base, user=_PG_SUPERUSER, group=_PG_SUPERUSER)
    data = base / "data"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    init = subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-U", _PG_SUPERUSER, "-E", "UTF8", "--no-sync",
         "--auth-local=trust", "--auth-host=scram-sha-256", "--no-instructions"],
        cwd=base, env=env, capture_output=True, text=True, timeout=120, **drop,
    )  # fmt: skip
    if init.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"initdb failed ({init.returncode}): {init.stderr.strip()}", pytrace=False)

    proc: subprocess.Popen[bytes] | None = None
    port = 0
    log = base / "postgres.log"
    for _attempt in range(3):  # the free port may be taken between probing and binding
        port = _free_port()
        with open(log, "ab") as logf:
            proc = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(base),
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=32MB"],
                cwd=base, env=env, stdout=logf, stderr=subprocess.STDOUT, **drop,
            )  # fmt: skip
        if _wait_ready(proc, base, port, timeout=30):
            break
        _stop(proc)
        proc = None
    if proc is None:
        text = log.read_text(errors="replace")[-2000:]
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start; log tail:\n{text}", pytrace=False)

    server = PgServer(pid=proc.pid, port=port, socket_dir=base, data_dir=data)
    try:
        with server.admin() as conn:
            conn.execute(f"CREATE ROLE {PG_ROLE} LOGIN CREATEDB PASSWORD '{PG_PASSWORD}'")
            conn.execute(f"CREATE DATABASE {PG_ROLE} OWNER {PG_ROLE} TEMPLATE template0")
        yield server
    finally:
        _stop(proc)
        shutil.rmtree(base, ignore_errors=True)


def _wait_ready(proc: subprocess.Popen[bytes], sockdir: Path, port: int, timeout: float) -> bool:
    import psycopg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            psycopg.connect(host=str(sockdir), port=port, user=_PG_SUPERUSER, dbname="postgres",
                            connect_timeout=2).close()  # fmt: skip
            return True
        except psycopg.OperationalError:
            time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT) of the postmaster we started, by its PID; SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def _migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Per backend, a database migrated to head once per session (built on first use), copied by `db_url`
    for tests that use `engine`: migrating every test's database costs about a second on PostgreSQL."""
    return {"dir": str(tmp_path_factory.mktemp("migrated"))}


def _migrated(backend: str, request: pytest.FixtureRequest) -> str:
    """The name of the migrated PostgreSQL template database, or the path of the migrated SQLite file."""
    from orchestrator.state.db import create_db_engine, init_schema

    cache: dict[str, str] = request.getfixturevalue("_migrated_templates")
    if backend not in cache:
        if backend == "sqlite":
            target = str(Path(cache["dir"]) / "template.db")
            url = f"sqlite:///{target}"
        else:
            server: PgServer = request.getfixturevalue("pg_server")
            target = server.create_database()
            url = server.url(target)
        eng = create_db_engine(url)
        init_schema(eng)
        eng.dispose()  # a template must have no open connection (PostgreSQL) / a checkpointed WAL (SQLite)
        cache[backend] = target
    return cache[backend]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to a database of its own for this test: a SQLite file in tmp_path, or a fresh PostgreSQL
    database (dropped after). It is empty, unless the test also uses `engine`: then it is already at the
    newest schema revision (a copy of a database migrated once per session)."""
    migrated = "engine" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "macfleet.db"
        if migrated:
            shutil.copyfile(_migrated("sqlite", request), path)
        yield f"sqlite:///{path}"
        return
    server: PgServer = request.getfixturevalue("pg_server")
    name = server.create_database(_migrated("postgresql", request) if migrated else "template0")
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on db_url with the schema at the newest revision (init_schema is run: a no-op there)."""
    from orchestrator.state.db import create_db_engine, init_schema

    eng = create_db_engine(db_url)
    init_schema(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def orchestrate_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Isolate a CLI test: no ORCHESTRATE_* from the caller, XDG_DATA_HOME and the config file in tmp_path,
    and fresh `orchestrator.cli.context` caches. The config file `<tmp_path>/orchestrate.toml` starts empty.
    Yields the data directory (`<tmp>/data/macfleet`).

    Set ORCHESTRATE_DATABASE_URL (monkeypatch.setenv) to run the CLI on the `db_url` database."""
    for var in list(os.environ):
        if var.startswith("ORCHESTRATE_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    config = tmp_path / "orchestrate.toml"
    config.write_text("")  # tests write their settings here
    monkeypatch.setenv("ORCHESTRATE_CONFIG", str(config))
    _clear_cli_caches()
    yield tmp_path / "data" / "macfleet"
    _clear_cli_caches()


def _clear_cli_caches() -> None:
    from orchestrator.cli import context
    from orchestrator.redact import LOG_REDACTOR

    LOG_REDACTOR.clear()  # values registered by an earlier command of this process

    for name in ("settings", "engine"):
        fn = getattr(context, name, None)
        if fn is not None and hasattr(fn, "cache_clear"):
            if name == "engine" and fn.cache_info().currsize:
                fn().dispose()
            fn.cache_clear()
