"""What every command needs: settings, an engine on the configured database, a console."""

from __future__ import annotations

from functools import cache

from sqlalchemy.engine import Engine

from orchestrator.config import Settings, load_settings
from orchestrator.state.db import open_state_database


@cache
def settings() -> Settings:
    return load_settings()


@cache
def engine() -> Engine:
    """The configured database, brought to the newest schema. Raises DatabaseUnavailable (the CLI's bad
    input boundary turns it into one message and exit 2). A missing directory is created only for the
    default location in the data directory, not for a configured database_url."""
    s = settings()
    return open_state_database(s.effective_database_url, create_dir=s.database_url is None)
