"""The `orchestrate` executable's entry point: start fast, then run the CLI.

Importing SQLAlchemy, pydantic and typer builds about a hundred thousand objects; the cyclic garbage
collector scanning them again and again during start-up cost ~130 ms of a 1 s `orchestrate status` over
10,000 devices. So collection is off while the command's modules load, the survivors are frozen (moved out
of the collector's sight for good), and collection is back on before the command runs.
"""

from __future__ import annotations

import gc


def main() -> None:
    gc.disable()
    try:
        from orchestrator import cli

        cli.prepare()
    finally:
        gc.freeze()
        gc.enable()
    cli.run()
