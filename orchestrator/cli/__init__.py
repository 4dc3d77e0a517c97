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


def _register() -> None:
    """Attach every command group once (tests call this too)."""
    global _registered
    if _registered:
        return
    from orchestrator.cli import (
        artifact,
        certs,
        db,
        demo,
        deploy,
        inventory,
        lifecycle,
        runs,
        secrets,
        status,
        upgrade,
    )

    app.add_typer(inventory.app, name="inventory")
    app.add_typer(certs.app, name="certs")
    app.add_typer(secrets.app, name="secrets")
    app.add_typer(artifact.app, name="artifact")
    app.add_typer(db.app, name="db")
    app.command("deploy")(deploy.deploy)
    app.command("upgrade")(upgrade.upgrade)
    for name in ("uninstall", "reconfigure", "start", "stop", "restart", "converge", "logs"):
        app.command(name)(getattr(lifecycle, name))
    app.command("status")(status.status)
    app.add_typer(runs.app, name="runs")
    app.command("demo")(demo.demo)
    _registered = True


def main() -> None:
    from orchestrator.config import ConfigError
    from orchestrator.console import Console

    _register()
    try:
        app()
    except ConfigError as e:
        # A bad orchestrate.toml or ORCHESTRATE_* value: say which, without a traceback.
        Console().error(str(e))
        sys.exit(2)
