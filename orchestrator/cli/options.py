"""Options every command shares: `--group` (repeatable), `--limit` (globs, repeatable or comma lists),
`--json`. Use them as parameter annotations:

    def list_(group: GroupOpt = None, limit: LimitOpt = None, json_out: JsonOpt = False) -> None:
        groups, limits = targets(group, limit)
"""

from __future__ import annotations

from typing import Annotated

import typer

from inventory import split_patterns

GroupOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--group",
        "-g",
        help="Act on the devices of this group and of its child groups (repeat for several).",
        show_default=False,
    ),
]
LimitOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--limit",
        "-l",
        help="Only device names matching these glob patterns (repeat, or a comma list); !PATTERN excludes.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
ConcurrencyOpt = Annotated[
    int | None, typer.Option("--concurrency", min=1, max=10_000, help="Devices worked on at once.")
]
TrustOpt = Annotated[
    str | None,
    typer.Option(
        "--trust",
        help="CA trust: ssh (try over SSH; refused, the Mac is installed and awaits trust), profile (never "
        "try; await the MDM profile from `certs profile`), skip (leave trust alone). Default: [trust] mode.",
        show_default=False,
    ),
]
ExecutorOpt = Annotated[
    str | None,
    typer.Option("--executor", help="local (this process) or celery (the workers); default: config."),
]
DetachOpt = Annotated[
    bool, typer.Option("--detach", help="With celery: return once the run is dispatched (see runs show).")
]


def targets(group: list[str] | None, limit: list[str] | None) -> tuple[list[str], list[str]]:
    """The `--group` names and the `--limit` patterns (comma lists split), ready for `resolve_targets`."""
    groups = [g.strip() for g in group or [] if g.strip()]
    return groups, split_patterns(limit or [])
