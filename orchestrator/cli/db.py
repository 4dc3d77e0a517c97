"""`orchestrate db`: the state database's schema (upgrade, current) and location (path).

Exit codes: 2 for bad configuration, an unreachable database or another program's database, 1 when the
database is not what the command needs (a schema newer than this program, not SQLite for `db path`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from orchestrator import audit
from orchestrator.cli import context
from orchestrator.cli.exits import EXIT_BAD_INPUT, EXIT_FAILED
from orchestrator.cli.options import JsonOpt
from orchestrator.config import ConfigError, configure_logging
from orchestrator.console import Console
from orchestrator.state.db import (
    DatabaseUnavailable,
    ForeignDatabase,
    SchemaError,
    check_database_location,
    create_db_engine,
    current_revision,
    head_revision,
    init_schema,
    redacted_url,
    session_scope,
    sqlite_path,
)

log = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True, help="The state database: schema migrations and location.")


@app.callback()
def _options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level.")] = False,
) -> None:
    """The state database: schema migrations and location."""
    console = Console()
    with _errors(console):
        configure_logging(context.settings(), verbose=verbose)


@contextmanager
def _errors(console: Console) -> Iterator[None]:
    try:
        yield
    except ConfigError as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (ForeignDatabase, DatabaseUnavailable) as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except SchemaError as e:
        console.error(str(e))
        raise typer.Exit(EXIT_FAILED) from None
    except SQLAlchemyError as e:
        # the driver's first line says what failed (refused, auth); the URL is shown without its password
        orig = getattr(e, "orig", None)
        reason = (str(orig if orig is not None else e).strip().splitlines() or [type(e).__name__])[0]
        url = redacted_url(context.settings().effective_database_url)
        console.error(f"cannot use the database {url}: {reason}")
        log.info("database error: %s: %s", type(e).__name__, reason)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _engine() -> Engine:
    """An engine on the configured database, without migrating it (unlike `context.engine()`). A missing
    directory is created only for the default location (as `context.engine()` does)."""
    settings = context.settings()
    check_database_location(settings.effective_database_url, create_dir=settings.database_url is None)
    return create_db_engine(settings.effective_database_url)


@app.command("upgrade")
def upgrade(json_out: JsonOpt = False) -> None:
    """Bring the database schema to the newest revision (creates the database file when missing)."""
    console = Console(json_mode=json_out)
    with _errors(console):
        url = context.settings().effective_database_url
        engine = _engine()
        try:
            before = current_revision(engine)
            after = init_schema(engine)
            with session_scope(engine) as s:
                audit.record(s, context.settings().actor, "db.upgrade", {"from": before, "to": after})
        finally:
            engine.dispose()
        log.info("schema of %s: %s -> %s", redacted_url(url), before, after)
    if json_out:
        console.json({"url": redacted_url(url), "from": before, "to": after, "changed": before != after})
    elif before == after:
        console.success(f"{redacted_url(url)} is already at the newest revision {after}")
    else:
        console.success(f"{redacted_url(url)} upgraded from {before or '(empty)'} to {after}")


@app.command("current")
def current(json_out: JsonOpt = False) -> None:
    """Show the database's schema revision and whether it is the newest this program knows."""
    console = Console(json_mode=json_out)
    with _errors(console):
        url = context.settings().effective_database_url
        engine = _engine()
        try:
            rev = current_revision(engine)
        finally:
            engine.dispose()
        head = head_revision()
    if json_out:
        console.json({"url": redacted_url(url), "current": rev, "head": head, "up_to_date": rev == head})
        return
    console.info(f"database: {redacted_url(url)}")
    console.info(f"revision: {rev or '(empty: run `orchestrate db upgrade`)'}")
    console.info(f"newest:   {head}{'' if rev == head else ' (upgrade with `orchestrate db upgrade`)'}")


@app.command("path")
def path(json_out: JsonOpt = False) -> None:
    """Print where the SQLite database file is (default `$XDG_DATA_HOME/macfleet/macfleet.db`, i.e.
    `~/.local/share/macfleet/macfleet.db`)."""
    console = Console(json_mode=json_out)
    with _errors(console):
        url = context.settings().effective_database_url
    file = sqlite_path(url)
    if file is None:
        console.error(f"the configured database is not a SQLite file: {redacted_url(url)}")
        raise typer.Exit(EXIT_FAILED)
    if json_out:
        console.json({"path": str(file), "exists": file.exists()})
    else:
        console.info(str(file))
