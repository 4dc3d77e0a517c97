"""The controller's log: stderr and an optional file, every handler masking registered secrets."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from orchestrator.config.settings import Settings
from orchestrator.config.sources import ConfigError
from orchestrator.redact import LOG_REDACTOR, Redactor

_HANDLER_TAG = "_macfleet_handler"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time of the record (test runners swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(
    settings: Settings,
    *,
    verbose: bool = False,
    log_file: Path | None = None,
    redactor: Redactor | None = None,
) -> None:
    """Send the controller's log to stderr (and to log_file or `settings.log_file`), at DEBUG when verbose
    else `settings.log_level`. Every handler masks the values registered in redactor (default: the
    process-wide `orchestrator.redact.LOG_REDACTOR`). Calling it again replaces the handlers it added.

    Raises ConfigError for an unknown level name."""
    level_name = "DEBUG" if verbose else settings.log_level.upper()
    level = logging.getLevelNamesMapping().get(level_name)
    if level is None:
        raise ConfigError(f"unknown log_level {settings.log_level!r}: use DEBUG, INFO, WARNING or ERROR")
    reset_logging()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [_StderrHandler()]
    path = log_file or settings.log_file
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(path, encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot write the log file {path}: {e.strerror or e}") from None
    flt = (redactor or LOG_REDACTOR).logging_filter()
    root = logging.getLogger()
    for h in handlers:
        h.setFormatter(fmt)
        h.addFilter(flt)
        setattr(h, _HANDLER_TAG, True)
        root.addHandler(h)
    root.setLevel(level)


def reset_logging() -> None:
    """Remove (and close) the handlers configure_logging added."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _HANDLER_TAG, False):
            root.removeHandler(h)
            h.close()
