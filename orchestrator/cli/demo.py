"""`orchestrate demo`: the controller end to end against a simulated fleet (SQLite, no Redis)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.console import Console


def demo(
    hosts: Annotated[int, typer.Option("--hosts", min=1, max=1000, help="How many simulated Macs.")] = 9,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Keep fleet, artifacts and database here (default: a new temp dir)."),
    ] = None,
) -> None:
    """Start simulated Macs, build artifacts and a lab CA, import inventory and certificates, show them."""
    from orchestrator.demo import run_demo

    code = asyncio.run(run_demo(Console(), hosts, workdir))
    raise typer.Exit(code)
