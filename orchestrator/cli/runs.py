"""`orchestrate runs list|show|resume|halt|retry`: the history of runs, one run in detail, continuing,
halting or retrying a run.

Exit codes: 0; 1 when a resumed run ends with a failed device; 2 for an unknown or ambiguous run id or a
run that cannot be resumed; 130 when a resumed run is stopped again by Ctrl-C.
"""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator import reports, runs
from orchestrator.cli import context
from orchestrator.cli.exits import EXIT_BAD_INPUT
from orchestrator.cli.options import ConcurrencyOpt, DetachOpt, ExecutorOpt, JsonOpt
from orchestrator.cli.status import columns
from orchestrator.console import Console
from orchestrator.state.db import session_scope
from orchestrator.state.models import JobStatus

app = typer.Typer(no_args_is_help=True, help="Runs: history, one run's step matrix, resume.")

RunArg = Annotated[str, typer.Argument(help="A run id, or a unique prefix of one (as `runs list` shows).")]

# One character per step outcome in the matrix, so a run of a dozen steps fits a terminal line.
_MARK = {"changed": "✓", "ok": "·", "noop": "=", "failed": "✗", "skipped": "-", "running": "…"}


def _when(row: reports.RunRow) -> str:
    return row.created_at.strftime("%Y-%m-%d %H:%M:%S")


def _duration(row: reports.RunRow) -> str:
    from orchestrator.live import format_duration

    if row.started_at and row.ended_at:
        return format_duration((row.ended_at - row.started_at).total_seconds())
    return ""


def _clip(etype: str | None, message: str | None, width: int = 60) -> str:
    text = ": ".join(x for x in (etype, message) if x)
    return text if len(text) <= width else text[: width - 1] + "…"


def _param(v: object) -> str:
    return ", ".join(str(x) for x in v) if isinstance(v, list) else str(v)


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs, newest first.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """The newest runs with their device counts by status."""
    console = Console(json_mode=json_out)
    with session_scope(context.engine()) as s:
        rows = reports.list_runs(s, limit)
    if json_out:
        console.json([r.as_json() for r in rows])
        return
    if not rows:
        console.info("no runs yet (start one with `orchestrate deploy --group G`)")
        return
    console.table(
        None,
        ["run", "kind", "status", "created", "by", "took", "devices", "halt reason"],
        [
            [r.id[:12], r.kind, r.status, _when(r), r.created_by, _duration(r),
             ", ".join(f"{n} {st}" for st, n in r.counts.items()), r.halt_reason]
            for r in rows
        ],
    )  # fmt: skip


@app.command("show")
def show(run: RunArg, json_out: JsonOpt = False) -> None:
    """One run: parameters, each device's status and error, and the step matrix."""
    console = Console(json_mode=json_out)
    try:
        with session_scope(context.engine()) as s:
            detail = reports.show_run(s, run)
    except reports.ReportError as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if json_out:
        console.json(detail.as_json())
        return
    r = detail.run
    console.info(f"run {r.id}  {r.kind}  {r.status}")
    took = _duration(r) or "-"
    console.info(f"  created {_when(r)} by {r.created_by or '?'}; executor {detail.executor}; took {took}")
    if r.halt_reason:
        console.info(f"  halted: {r.halt_reason}")
    console.info("  " + ", ".join(f"{n} {st}" for st, n in r.counts.items()))
    if len(detail.waves) > 1:
        console.info("waves:")
        for w in detail.waves:
            counts = ", ".join(f"{n} {st}" for st, n in sorted(w["counts"].items()))
            console.info(f"  {w['wave']}: {w['devices']} device(s): {counts}")
    console.info("parameters:")
    for k, v in detail.params.items():
        console.info(f"  {k}: {_param(v)}")
    console.info("")
    legend = "  ".join(f"{m} {st}" for st, m in _MARK.items())
    header = ["device", "status", *detail.step_names, "took", "error"]
    rows = []
    for j in detail.jobs:
        marks = [_MARK.get(j.steps[n].status, "?") if n in j.steps else "" for n in detail.step_names]
        took = f"{j.duration_s:.1f}s" if j.duration_s is not None else ""
        rows.append([j.device, j.status, *marks, took, _clip(j.error_type, j.error_message)])
    console.info(columns(header, rows).rstrip("\n"))
    console.info(f"({legend})")
    errors = [(j.device, j.error_type, j.error_message) for j in detail.jobs if j.error_message]
    if errors and len(errors) <= 50:
        console.info("errors:")
        for device, etype, msg in errors:
            console.info(f"  {device}: {etype}: {msg}")
    noops = sorted({(n, c.noop_reason) for j in detail.jobs for n, c in j.steps.items() if c.noop_reason})
    if noops and len(noops) <= 20:
        console.info("no-op reasons:")
        for n, reason in noops:
            console.info(f"  {n}: {reason}")


@app.command("resume")
def resume(
    run: RunArg,
    concurrency: ConcurrencyOpt = None,
    executor: ExecutorOpt = None,
    detach: DetachOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Continue a stopped run: every unfinished device goes on from its last completed step."""
    from orchestrator.cli.dispatch import drive_run  # here: `runs list|show` need no driver (workers)

    console = Console(json_mode=json_out)
    settings = context.settings()
    try:
        with session_scope(context.engine()) as s:
            r = runs.resume_run(s, run, settings.actor)
            run_id = r.id
        with session_scope(context.engine()) as s:
            detail = reports.show_run(s, run_id)
    except (runs.RunError, reports.ReportError) as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    todo = sum(1 for j in detail.jobs if j.status == JobStatus.PENDING)
    console.info(f"resuming run {run_id}: {todo} device(s) to continue")
    raise typer.Exit(drive_run(console, run_id, todo, concurrency, executor=executor, detach=detach))


@app.command("halt")
def halt(
    run: RunArg,
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the record.")] = None,
) -> None:
    """Stop a running run: no new device starts (those mid-step finish the step); resumable."""
    console = Console()
    settings = context.settings()
    try:
        with session_scope(context.engine()) as s:
            r = runs.halt_run(s, run, settings.actor, reason)
            run_id = r.id
    except runs.RunError as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    console.success(f"run {run_id} halted; its driver stops starting devices within a second or two")
    console.info(f"continue it with: orchestrate runs resume {run_id[:12]}")


@app.command("retry")
def retry(
    run: RunArg,
    failed: Annotated[bool, typer.Option("--failed", help="Re-run only the devices that failed.")] = False,
    concurrency: ConcurrencyOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Re-run a run's failed devices (and only them), each from a fresh look at the Mac."""
    from orchestrator.cli.dispatch import drive_run  # here: `runs list|show` need no driver (workers)

    console = Console(json_mode=json_out)
    if not failed:
        console.error("say what to retry: --failed (the only kind for now)")
        raise typer.Exit(EXIT_BAD_INPUT)
    settings = context.settings()
    try:
        with session_scope(context.engine()) as s:
            r, job_ids = runs.retry_failed(s, run, settings.actor)
            run_id = r.id
    except runs.RunError as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    console.info(f"retrying {len(job_ids)} failed device(s) of run {run_id}")
    raise typer.Exit(drive_run(console, run_id, len(job_ids), concurrency, only=job_ids))
