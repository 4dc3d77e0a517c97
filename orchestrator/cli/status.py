"""`orchestrate status`: per device its installed version, connection, last run and error; per group the
count at each version. Fast on big fleets: a few queries, and plain aligned text for the device rows
(a Rich table of 10,000 rows costs seconds).

`--refresh` first looks at the targeted Macs that have the client on record, read-only (a `check` run: facts,
then the verify poll for a short window), and updates their rows: how `unverified` devices get re-checked.

Exit codes: 0; 2 for an unknown group or a filter that matches nothing (or, with --refresh, no installed
device); with --refresh the check run's code as deploy's (1 failed, 3 unverified).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from inventory import TargetingError
from orchestrator import reports
from orchestrator.cli import context
from orchestrator.cli.exits import EXIT_BAD_INPUT
from orchestrator.cli.options import GroupOpt, JsonOpt, LimitOpt, targets
from orchestrator.console import Console
from orchestrator.state.db import session_scope
from orchestrator.state.models import JobStatus

_ERROR_WIDTH = 70


REFRESH_WINDOW = 15.0  # seconds each Mac's poll may look for evidence during `status --refresh`

RefreshOpt = Annotated[
    bool,
    typer.Option(
        "--refresh",
        help="First re-check the targeted installed Macs read-only (running, Switch connection) and update "
        "their rows.",
    ),
]


def status(
    group: GroupOpt = None, limit: LimitOpt = None, json_out: JsonOpt = False, refresh: RefreshOpt = False
) -> None:
    """Show each device's installed version, connection, last run and error, and the versions per group."""
    console = Console(json_mode=json_out)
    groups, limits = targets(group, limit)
    code = _refresh(console, groups, limits) if refresh else 0
    try:
        with session_scope(context.engine()) as s:
            report = reports.device_status(s, groups, limits)
    except TargetingError as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if json_out:
        console.json(report.as_json())
        raise typer.Exit(code)
    if not report.devices:
        console.info("no devices (import an inventory with `orchestrate inventory import FILE`)")
        raise typer.Exit(code)
    sys.stdout.write(render_status(report))
    sys.stdout.flush()
    raise typer.Exit(code)


def _refresh(console: Console, groups: list[str], limits: list[str]) -> int:
    """A read-only `check` run over the targeted devices with the client on record; its exit code."""
    # here, not at the top: plain `status` should not load the drivers (dispatch imports workers)
    from orchestrator.cli.dispatch import drive_run, print_refused
    from orchestrator.inventory_store import resolve_targets
    from orchestrator.planning.plans import plan_lifecycle_run
    from orchestrator.planning.request import PlanningError

    settings = context.settings()
    try:
        with session_scope(context.engine()) as s:
            installed = [d.name for d in resolve_targets(s, groups, limits) if d.installed_version]
            if not installed:
                console.error("no targeted device has the client installed on record: nothing to re-check")
                raise typer.Exit(EXIT_BAD_INPUT)
            plan = plan_lifecycle_run(
                s, settings, "check", groups, [*limits, *installed] if limits else installed,
                {"verify_timeout": REFRESH_WINDOW}, settings.actor,
            )  # fmt: skip
    except (TargetingError, PlanningError) as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    print_refused(console, plan.refused)
    console.info(f"run {plan.run_id}: re-checking {len(plan.device_ids)} device(s), read-only")
    assert plan.run_id is not None
    return drive_run(console, plan.run_id, len(plan.device_ids), None)


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
    labels = {JobStatus.UNVERIFIED.value: "unverified", JobStatus.AWAITING_TRUST.value: "awaiting CA trust"}
    rechecks = "".join(f", {n} {labels.get(outcome, outcome)}" for outcome, n in report.recheck.items())
    out.append(f"\n{len(report.devices)} device(s), {report.connected} connected{rechecks}\n")
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
