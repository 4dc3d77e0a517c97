"""What every command needs: settings, an engine on the configured database, a console."""

from __future__ import annotations

from functools import cache

from sqlalchemy.engine import Engine

from orchestrator.config import Settings, load_settings
from orchestrator.state.db import create_db_engine, init_schema


@cache
def settings() -> Settings:
    return load_settings()


@cache
def engine() -> Engine:
    """The configured database, brought to the newest schema."""
    e = create_db_engine(settings().effective_database_url)
    init_schema(e)
    return e
