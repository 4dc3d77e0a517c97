"""The `orchestrate` command: thin adapters that parse, call a service function and render."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="orchestrate",
    help="Roll the 1E Client out to fleets of Macs over SSH, and keep it installed, upgraded and configured.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from orchestrator.cli import artifact, certs, db, inventory, secrets

    app.add_typer(inventory.app, name="inventory")
    app.add_typer(certs.app, name="certs")
    app.add_typer(secrets.app, name="secrets")
    app.add_typer(artifact.app, name="artifact")
    app.add_typer(db.app, name="db")


def main() -> None:
    _register()
    app()
