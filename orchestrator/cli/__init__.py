"""The `orchestrate` command: thin adapters that parse, call a service function and render."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from typer.core import TyperGroup

from orchestrator.cli.exits import EXIT_BAD_INPUT


class _BadInputBoundary(TyperGroup):
    """Every command runs inside this: a bad configuration, an unusable database or an unreadable input file
    that a command did not handle itself is one clear message and exit 2 (bad input), never a traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer.Context (typer vendors click)
        try:
            return super().invoke(ctx)
        except Exception as e:
            if not _is_bad_input(e):
                raise
            from orchestrator.console import Console

            Console().error(str(e))
            raise typer.Exit(EXIT_BAD_INPUT) from None


def _is_bad_input(e: Exception) -> bool:
    from inventory.userfiles import UserFileError
    from orchestrator.config import ConfigError
    from orchestrator.state.db import DatabaseUnavailable

    return isinstance(e, ConfigError | DatabaseUnavailable | UserFileError)


app = typer.Typer(
    name="orchestrate",
    help="Roll the 1E Client out to fleets of Macs over SSH, and keep it installed, upgraded and configured.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=_BadInputBoundary,
)
_registered = False


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG (secrets masked).")] = False,
    log_file: Annotated[Path | None, typer.Option("--log-file", help="Also log to this file.")] = None,
) -> None:
    """Roll the 1E Client out to fleets of Macs over SSH, and keep it installed, upgraded and configured."""
    if verbose or log_file:
        from orchestrator.cli import context
        from orchestrator.config import configure_logging

        configure_logging(context.settings(), verbose=verbose, log_file=log_file)


# command -> (module, attribute, is a group of subcommands)
_COMMANDS: dict[str, tuple[str, str, bool]] = {
    "inventory": ("inventory", "app", True),
    "certs": ("certs", "app", True),
    "secrets": ("secrets", "app", True),
    "artifact": ("artifact", "app", True),
    "db": ("db", "app", True),
    "deploy": ("deploy", "deploy", False),
    "upgrade": ("upgrade", "upgrade", False),
    **{name: ("lifecycle", name, False)
       for name in ("uninstall", "reconfigure", "start", "stop", "restart", "converge", "logs")},
    "status": ("status", "status", False),
    "facts": ("facts", "facts", False),
    "runs": ("runs", "app", True),
    "demo": ("demo", "demo", False),
}  # fmt: skip


def _register(only: str | None = None) -> None:
    """Attach every command (tests call this), or just `only` when the command line names one: each
    command module imports what it needs, and `orchestrate status` should not pay for the others."""
    global _registered
    if _registered:
        return
    import importlib

    names = [only] if only in _COMMANDS else list(_COMMANDS)
    for name in names:
        module, attr, group = _COMMANDS[name]
        target = getattr(importlib.import_module(f"orchestrator.cli.{module}"), attr)
        if group:
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
    _registered = only is None or only not in _COMMANDS


def _command_in(argv: list[str]) -> str | None:
    """The subcommand a command line names (the first word that is not a root option or its value)."""
    words = iter(argv)
    for word in words:
        if word == "--log-file":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def prepare() -> None:
    """Load what this command line needs (just its command's module when it names one)."""
    quiet_deprecations()
    _register(_command_in(sys.argv[1:]))


def quiet_deprecations() -> None:
    """Deprecation warnings (cryptography's DSA one on every command, with asyncssh's source lines on
    `deploy`) go to the DEBUG log instead of stderr, where a user would learn to ignore warnings; other
    warnings are shown as before, and with -v/--verbose all are."""
    import logging
    import warnings

    if {"-v", "--verbose"} & set(sys.argv[1:]):
        return  # verbose: every warning as Python shows it
    shown = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, DeprecationWarning) or category.__name__.endswith("DeprecationWarning"):
            logging.getLogger("py.warnings").debug(
                "%s:%s: %s: %s", filename, lineno, category.__name__, message
            )
            return
        shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main() -> None:
    prepare()
    run()


def run() -> None:
    from orchestrator.config import ConfigError
    from orchestrator.console import Console

    try:
        app()
    except ConfigError as e:
        # A bad orchestrate.toml or ORCHESTRATE_* value: say which, without a traceback.
        Console().error(str(e))
        sys.exit(2)
