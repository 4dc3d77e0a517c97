"""Engine, sessions and schema migrations of the state database.

SQLite (the default, a file under the data directory) gets WAL and a busy timeout so several writers
(workers, CLI commands) can share it; `postgresql://` URLs are served by psycopg 3. The schema is managed
by Alembic only: `init_schema` runs `upgrade head` from the revisions shipped in this package, so the
operator needs no alembic.ini.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, create_engine

from orchestrator.state import models  # noqa: F401  (registers the tables)

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# Alembic is imported only when a migration has to run: `orchestrate status` should not pay for it.
_REVISION_LINE = re.compile(r"^(down_)?revision\s*(?::[^=]*)?=\s*['\"]?([\w]+|None)['\"]?\s*$", re.M)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock key serializing concurrent `init_schema` calls on one PostgreSQL database
_MIGRATION_LOCK_KEY = 0x6D6163666C656574  # "macfleet"
SQLITE_BUSY_TIMEOUT_MS = 30_000


class SchemaError(RuntimeError):
    """The database's schema is not one this program knows (e.g. written by a newer version)."""


class ForeignDatabase(SchemaError):
    """The database holds tables but no macfleet schema record: another program's database."""


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be opened or used, or is not ours. The message names the URL (its
    password masked), why, and what to do; it is bad input (exit 2) for the CLI."""


def normalize_url(url: str) -> str:
    """The SQLAlchemy URL for url: `postgresql://` and `postgres://` select psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL points at, or None for other databases and in-memory SQLite."""
    u = make_url(normalize_url(url))
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def redacted_url(url: str) -> str:
    """url with its password masked, for messages and logs."""
    return make_url(normalize_url(url)).render_as_string(hide_password=True)


def create_db_engine(url: str) -> Engine:
    """An engine for url. SQLite files get WAL, a 30 s busy timeout and foreign keys on (the parent directory
    is created); PostgreSQL connections are checked before use."""
    url = normalize_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            _enable_wal(cur)
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def _enable_wal(cur: Any) -> None:
    """Switch a SQLite file to WAL (it stays so). Switching needs an exclusive lock and SQLite may answer
    "database is locked" at once, without waiting, while another process opens the new file: retry then."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def shipped_head() -> str:
    """The newest revision this program ships, read from the revision files (no alembic import): the one
    no other revision names as its down_revision."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for down, value in _REVISION_LINE.findall(path.read_text()):
            if value != "None":
                (parents if down else revisions).add(value)
    heads = revisions - parents
    if len(heads) != 1:  # pragma: no cover - the package always ships one line of revisions
        raise SchemaError(f"the shipped migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def head_revision() -> str:
    """The newest revision this program ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise SchemaError("no migrations found in the package")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it has no schema yet."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _at_head(engine: Engine, head: str) -> bool:
    """True when the database already is at `head` (one query; no alembic import)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return rows == [head]


def write_lock(conn: Connection) -> None:
    """Take the database-wide write lock for the transaction conn is starting (SQLite `BEGIN IMMEDIATE`;
    a no-op on PostgreSQL, which locks rows). Call it first in a transaction that reads then writes and
    must not interleave with another writer (migrations, key rotation)."""
    if conn.dialect.name == "sqlite" and not conn.in_transaction():
        # pysqlite opens a transaction only before DML; an explicit BEGIN IMMEDIATE makes the reads and
        # DDL that follow part of one transaction and waits (busy timeout) for other writers.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def init_schema(engine: Engine) -> str:
    """Bring the schema to the newest revision (`alembic upgrade head`) and return that revision.

    Safe to call from several processes at once: SQLite serializes on `BEGIN IMMEDIATE`, PostgreSQL on an
    advisory lock. Raises SchemaError when the database is at a revision this program does not know."""
    shipped = shipped_head()
    if _at_head(engine, shipped):
        return shipped
    with engine.connect() as conn:
        tables = inspect(conn).get_table_names()
    if tables and "alembic_version" not in tables:
        # every macfleet database records its schema revision from the first migration on
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise ForeignDatabase(
            f"the database holds tables ({shown}) but no macfleet schema record: it belongs to another "
            "program; point database_url at an empty or a macfleet database"
        )
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = head_revision()
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        else:
            write_lock(conn)
        current = MigrationContext.configure(conn).get_current_revision()
        script = ScriptDirectory.from_config(_alembic_config())
        if current is not None and current != head and not _known(script, current):
            raise SchemaError(
                f"the database is at schema revision {current}, which this version of macfleet does not know "
                f"(newest known: {head}); upgrade macfleet"
            )
        if current != head:
            command.upgrade(_alembic_config(conn), "head")
        conn.commit()
    return head


def _known(script: ScriptDirectory, revision: str) -> bool:
    from alembic.util import CommandError as AlembicError

    try:
        return script.get_revision(revision) is not None
    except AlembicError:
        return False


def open_state_database(url: str, *, create_dir: bool = True) -> Engine:
    """An engine on url, the database checked to open and brought to the newest schema.

    create_dir: make a missing parent directory of a SQLite file (the default location); otherwise a missing
    directory is an error, so a typo in a configured path is not silently created. Raises
    DatabaseUnavailable (refused, unreachable, no such directory, not a database file, another program's
    database, a schema newer than this program)."""
    shown = _safe_url(url)
    check_database_location(url, create_dir=create_dir)
    engine: Engine | None = None
    try:
        engine = create_db_engine(url)
        init_schema(engine)
        return engine
    except SchemaError as e:  # ForeignDatabase among them
        reason = str(e)
    except (SQLAlchemyError, sqlite3.Error, OSError) as e:
        orig = getattr(e, "orig", None)
        lines = str(orig if orig is not None else e).strip().splitlines()
        reason = lines[0] if lines else type(e).__name__
        if "file is not a database" in reason:
            reason += " (the file is not a SQLite database)"
    if engine is not None:
        engine.dispose()
    raise DatabaseUnavailable(f"cannot use the database {shown}: {reason}")


def check_database_location(url: str, *, create_dir: bool) -> None:
    """For a SQLite file: its directory exists (or create_dir allows making it) and the path, when it
    exists, is a regular file (a FIFO or device would hang SQLite). Raises DatabaseUnavailable."""
    shown = _safe_url(url)
    try:
        path = sqlite_path(url)
    except Exception:  # make_url's errors for strings that are no URL at all
        raise DatabaseUnavailable(f"{shown}: not a database URL") from None
    if path is None:
        return
    if path.parent.exists() and not path.parent.is_dir():
        raise DatabaseUnavailable(f"cannot use the database {shown}: {path.parent} is not a directory")
    if not create_dir and not path.parent.is_dir():
        raise DatabaseUnavailable(
            f"cannot use the database {shown}: the directory {path.parent} does not exist; create it or "
            "fix database_url"
        )
    if path.exists() and not path.is_file():
        raise DatabaseUnavailable(f"cannot use the database {shown}: {path} is not a regular file")


def _safe_url(url: str) -> str:
    try:
        return redacted_url(url)
    except Exception:  # not parseable: show only the scheme, as the rest may hold a password
        return url.partition("://")[0][:40] + "://..." if "://" in url else "(not a URL)"


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as s:
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
