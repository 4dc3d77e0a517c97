"""`orchestrate status`: per device its installed version, connection, last run and error; per group the
count at each version. Fast on big fleets: a few queries, and plain aligned text for the device rows
(a Rich table of 10,000 rows costs seconds).

Exit codes: 0; 2 for an unknown group or a filter that matches nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from inventory import TargetingError
from orchestrator import reports
from orchestrator.cli import context
from orchestrator.cli.options import GroupOpt, JsonOpt, LimitOpt, targets
from orchestrator.console import Console
from orchestrator.state.db import session_scope

EXIT_BAD_INPUT = 2
_ERROR_WIDTH = 70


def status(group: GroupOpt = None, limit: LimitOpt = None, json_out: JsonOpt = False) -> None:
    """Show each device's installed version, connection, last run and error, and the versions per group."""
    console = Console(json_mode=json_out)
    groups, limits = targets(group, limit)
    try:
        with session_scope(context.engine()) as s:
            report = reports.device_status(s, groups, limits)
    except TargetingError as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if json_out:
        console.json(report.as_json())
        return
    if not report.devices:
        console.info("no devices (import an inventory with `orchestrate inventory import FILE`)")
        return
    sys.stdout.write(render_status(report))
    sys.stdout.flush()


def _connected(v: bool | None) -> str:
    return "-" if v is None else ("yes" if v else "no")


def _clip(text: str | None, width: int) -> str:
    if not text:
        return ""
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "…"


def render_status(report: reports.StatusReport) -> str:
    """The status report as plain aligned text: the device rows, then the versions per group."""
    rows = [
        [d.name, ",".join(d.groups), d.installed_version or "-", _connected(d.connected),
         (d.last_run_id or "")[:8], d.last_outcome or "", _clip(d.last_error, _ERROR_WIDTH)]
        for d in report.devices
    ]  # fmt: skip
    out = [columns(["device", "groups", "version", "connected", "last run", "outcome", "last error"], rows)]
    waiting = f", {report.awaiting_trust} awaiting CA trust" if report.awaiting_trust else ""
    out.append(f"\n{len(report.devices)} device(s), {report.connected} connected{waiting}\n")
    if report.versions_by_group:
        grows = [[g, v, str(n)] for g, counts in report.versions_by_group.items() for v, n in counts.items()]
        out.append("\n" + columns(["group", "version", "devices"], grows))
    return "".join(out)


def columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, with a header and a rule; trailing blanks trimmed."""
    cols = zip(*rows, strict=True)
    widths = [max(len(h), max(map(len, c), default=0)) for h, c in zip(header, cols, strict=False)]
    widths += [len(h) for h in header[len(widths) :]]  # no rows: the header decides
    # one format string for every line: the last column is not padded
    fmt = "  ".join([*(f"{{:<{w}}}" for w in widths[:-1]), "{}"])
    lines = [fmt.format(*header).rstrip(), fmt.format(*["-" * w for w in widths]).rstrip()]
    lines.extend(fmt.format(*r).rstrip() for r in rows)
    return "\n".join(lines) + "\n"
