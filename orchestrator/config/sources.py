"""Where settings come from, read safely: the configuration file (bounded reader, TOML), its path, the data
directory and operator defaults, and the check of a database URL."""

from __future__ import annotations

import getpass
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic_settings import TomlConfigSettingsSource
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from inventory.userfiles import CONFIG, UserFileError, read_user_file

CONFIG_ENV = "ORCHESTRATE_CONFIG"
DEFAULT_CONFIG_FILE = "orchestrate.toml"


class ConfigError(ValueError):
    """The configuration file or environment holds a value that cannot be used; the message names it."""


def default_data_dir() -> Path:
    """~/.local/share/macfleet (XDG_DATA_HOME respected): the SQLite file, artifact store, secret key."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "macfleet"


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no USER/LOGNAME (some containers)
        return "operator"


def config_file_path() -> Path:
    """The configuration file read: `$ORCHESTRATE_CONFIG`, else `./orchestrate.toml` (may not exist)."""
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE)


def database_url_problem(url: str) -> str | None:
    """Why url is not a database we can use, or None. Accepted: `sqlite:///PATH` and PostgreSQL
    (`postgresql://USER:PASSWORD@HOST[:PORT]/DB`, also `postgres://` and `postgresql+psycopg://`). The
    message never repeats the URL (it may hold a password)."""
    accepted = "use sqlite:///PATH or postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE"
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        return f"not a database URL; {accepted}"
    if scheme.lower() not in _DB_SCHEMES:
        return f"unsupported database scheme {scheme[:40]!r}; {accepted}"
    try:
        u = make_url(url)
    except (ArgumentError, ValueError):  # e.g. a port that is not a number
        return f"a malformed {scheme.lower()} URL; {accepted}"
    if u.get_backend_name() == "sqlite":
        if u.host:
            return f"sqlite:// takes a path after three slashes (sqlite:///PATH), not a host; {accepted}"
        if not u.database or u.database == ":memory:":
            # an in-memory database would lose every run, device and secret when the command ends
            return f"the SQLite URL names no file; {accepted}"
    elif not u.database:
        return f"the PostgreSQL URL names no database; {accepted}"
    return None


_DB_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg")


def read_config_file(path: Path) -> dict[str, Any]:
    """The TOML table in path, read by the bounded reader (a regular file of at most 1 MiB).
    Raises ConfigError naming the file and what is wrong with it."""
    try:
        data = read_user_file(path, CONFIG)
    except UserFileError as e:
        via = f" ({CONFIG_ENV} names it)" if os.environ.get(CONFIG_ENV) else ""
        raise ConfigError(f"cannot read configuration file {path}: {e.reason}{via}") from None
    try:
        return tomllib.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read configuration file {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"cannot read configuration file {path}: not valid TOML: {e}") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise ConfigError(f"cannot read configuration file {path}: nested too deeply") from None


class BoundedToml(TomlConfigSettingsSource):
    """The TOML source, reading its file through the bounded reader (no FIFO hang, no unbounded read)."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        return read_config_file(Path(file_path))
