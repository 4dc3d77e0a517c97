"""The `orchestrate` command: thin adapters that parse, call a service function and render."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="orchestrate",
    help="Roll the 1E Client out to fleets of Macs over SSH, and keep it installed, upgraded and configured.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
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
    _register(_command_in(sys.argv[1:]))


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
