"""The one place that decides how the CLI talks to people: meaning-named methods, Rich styling, JSON mode."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console as RichConsole
from rich.table import Table


class Console:
    def __init__(self, json_mode: bool = False) -> None:
        self.json_mode = json_mode
        # Piped output (scripts, CI logs) gets a wide table instead of Rich's 80-column default.
        self.out = RichConsole(soft_wrap=True, highlight=False)
        if not self.out.is_terminal:
            self.out.width = 160
        self.err = RichConsole(stderr=True, soft_wrap=True, highlight=False)

    def info(self, msg: str) -> None:
        if not self.json_mode:
            self.out.print(msg, markup=False)

    def success(self, msg: str) -> None:
        if not self.json_mode:
            self.out.print(f"[green]✓[/green] {_esc(msg)}")

    def warning(self, msg: str) -> None:
        self.err.print(f"[yellow]warning:[/yellow] {_esc(msg)}")

    def error(self, msg: str) -> None:
        self.err.print(f"[red]error:[/red] {_esc(msg)}")

    def table(self, title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        t = Table(title=title, show_lines=False)
        for c in columns:
            t.add_column(c)
        for r in rows:
            t.add_row(*[_esc("" if v is None else str(v)) for v in r])
        self.out.print(t)

    def json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _esc(s: str) -> str:
    from rich.markup import escape

    return escape(s)
