"""`orchestrate deploy`: plan an install run, then drive it with the local driver under a live display.

Exit codes: 0 every device succeeded (or had nothing to do); 1 a device failed or was refused; 2 the run
could not be planned (bad parameter, no target, unknown version); 3 none failed but some are unverified
(running, no confirmed Switch connection); 4 none failed or unverified but some await their CA trust;
130 stopped by Ctrl-C (resumable).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer

from orchestrator import reports
from orchestrator.cli import context
from orchestrator.cli.options import ConcurrencyOpt, GroupOpt, JsonOpt, LimitOpt, TrustOpt, targets
from orchestrator.console import Console
from orchestrator.live import RunDisplay
from orchestrator.planning.plans import plan_run
from orchestrator.planning.request import DeployRequest, PlannedRun, PlanningError
from orchestrator.state.db import session_scope
from orchestrator.state.models import JobStatus

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNVERIFIED = 3  # no device failed, but some ran without a confirmed Switch connection
EXIT_AWAITING_TRUST = 4  # no device failed or unverified, but some wait for their CA trust (MDM profile)
EXIT_INTERRUPTED = 130
_OK_JOBS = ("succeeded", "skipped")
_FULL_TABLE_MAX = 100  # beyond this many devices the final table lists only the ones that did not succeed

ExecutorOpt = Annotated[
    str | None,
    typer.Option("--executor", help="local (this process) or celery (the workers); default: config."),
]
DetachOpt = Annotated[
    bool, typer.Option("--detach", help="With celery: return once the run is dispatched (see runs show).")
]


def deploy(
    group: GroupOpt = None,
    limit: LimitOpt = None,
    switch: Annotated[
        str | None, typer.Option("--switch", help="Tachyon Switch HOST:PORT (several: comma-separated).")
    ] = None,
    background_url: Annotated[
        str | None, typer.Option("--background-url", help="Background Channel https URL(s), comma-separated.")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="1E Client version (default: config, else newest DMG).")
    ] = None,
    method: Annotated[str | None, typer.Option("--method", help="install.sh (default) or pkg.")] = None,
    trust: TrustOpt = None,
    concurrency: ConcurrencyOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Gather facts and print each device's plan; change nothing.")
    ] = False,
    executor: ExecutorOpt = None,
    detach: DetachOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Install, configure and start the 1E Client on the targeted Macs."""
    console = Console(json_mode=json_out)
    groups, limits = targets(group, limit)
    settings = context.settings()
    request = DeployRequest(
        groups=groups, limits=limits, switch=switch, background_url=background_url, version=version,
        method=method, trust=trust,
    )  # fmt: skip
    try:
        with session_scope(context.engine()) as s:
            plan = plan_run(s, settings, request, settings.actor, persist=not dry_run)
    except PlanningError as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if dry_run:
        raise typer.Exit(_dry_run(console, plan, concurrency))
    _print_refused(console, plan.refused)
    assert plan.run_id is not None  # persisted
    if not plan.device_ids:
        console.error("every targeted device was refused before any connection; fix the causes above")
        code = _finish(console, plan.run_id, stopped=False)
        raise typer.Exit(code)
    version, n = plan.params["version"], len(plan.device_ids)
    console.info(f"run {plan.run_id}: installing {version} on {n} device(s)")
    raise typer.Exit(
        drive_run(console, plan.run_id, len(plan.device_ids), concurrency, executor=executor, detach=detach)
    )


def _print_refused(console: Console, refused: dict[str, tuple[str, str]]) -> None:
    for name, (etype, msg) in sorted(refused.items()):
        console.error(f"{name}: refused ({etype}): {msg}")


def _dry_run(console: Console, plan: PlannedRun, concurrency: int | None) -> int:
    from workers.local import dry_run

    plans = asyncio.run(
        dry_run(context.engine(), context.settings(), plan.params, plan.device_ids, concurrency=concurrency)
    )
    failed = bool(plan.refused) or any(
        p.error is not None or any("refusal" in step for _name, step in p.steps) for p in plans
    )
    if console.json_mode:
        data = plan.as_json()
        data["plans"] = [
            {"device": p.device, "facts": p.facts, "steps": [{"step": n, "plan": j} for n, j in p.steps],
             "error": {"error_type": p.error[0], "message": p.error[1]} if p.error else None}
            for p in plans
        ]  # fmt: skip
        console.json(data)
        return EXIT_FAILED if failed else 0
    _print_refused(console, plan.refused)
    console.info("dry run: nothing was changed; parameters:")
    for k, v in plan.params.items():
        console.info(f"  {k}: {v}")
    for p in plans:
        console.info("")
        if p.error is not None:
            console.error(f"{p.device}: {p.error[0]}: {p.error[1]}")
            continue
        console.info(f"{p.device}:")
        for name, step in p.steps:
            console.info(f"  {name}: {_describe_step(step)}")
            for line in _step_lines(step):
                console.info(f"      {line}")
    return EXIT_FAILED if failed else 0


def _describe_step(step: dict[str, Any]) -> str:
    if "noop" in step:
        return f"nothing to do ({step['noop']})"
    if "refusal" in step:
        r = step["refusal"]
        hint = f" ({r['hint']})" if r.get("hint") else ""
        return f"REFUSED {r.get('error_type')}: {r.get('message')}{hint}"
    n_up, n_cmd = len(step.get("uploads", [])), len(step.get("commands", []))
    parts = [f"{n_up} upload(s)" if n_up else "", f"{n_cmd} command(s)" if n_cmd else ""]
    return ", ".join(x for x in parts if x)


def _step_lines(step: dict[str, Any]) -> list[str]:
    import shlex

    out = [f"upload {u['upload']} → {u['name']}" for u in step.get("uploads", [])]
    for c in step.get("commands", []):
        prefix = "" if c.get("sudo", True) is False else "sudo "
        line = prefix + shlex.join(c["argv"])
        if c.get("stdin"):
            line += f"  < {c['stdin']}"
        if c.get("unless"):
            line += f"  (unless {shlex.join(c['unless'])})"
        out.append(line)
    return out


def drive_run(
    console: Console,
    run_id: str,
    total: int,
    concurrency: int | None,
    confirm: Callable[[int, int], Awaitable[bool]] | None = None,
    only: list[str] | None = None,
    *,
    executor: str | None = None,
    detach: bool = False,
) -> int:
    """Drive run_id under the live display (none in JSON mode), then print the final table (or JSON).

    executor (default: the configured one) "local" runs the devices in this process; "celery" publishes
    them to the workers and follows the run from the database (with detach: returns once dispatched).
    Ctrl-C once stops cleanly (resumable; with celery it stops following, the workers go on); twice
    raises KeyboardInterrupt. A wave confirmation (confirm) and a retry of some jobs (only) run on the
    local driver."""
    chosen = executor or ("local" if confirm or only else context.settings().executor.value)
    if chosen not in ("local", "celery"):
        console.error(f"--executor {chosen!r}: use local or celery")
        return EXIT_BAD_INPUT
    if chosen == "celery" and (confirm or only):
        console.error("confirming waves and retrying some devices need the local executor (--executor local)")
        return EXIT_BAD_INPUT
    if chosen == "celery":
        return _drive_celery(console, run_id, total, detach=detach)
    if detach:
        console.error("--detach needs the celery executor (--executor celery or executor = \"celery\")")
        return EXIT_BAD_INPUT
    from workers.local import drive

    def local(on_event: Any, stop: asyncio.Event) -> Any:
        return drive(context.engine(), context.settings(), run_id, concurrency=concurrency, on_event=on_event,
                     stop=stop, confirm=confirm, only=only)  # fmt: skip

    stopped = _under_display(console, total, local, lambda stop, flag: _first_interrupt(console, stop, flag))
    return _finish(console, run_id, stopped=stopped)


def _under_display(
    console: Console,
    total: int,
    work: Callable[[Any, asyncio.Event], Awaitable[Any]],
    on_first_sigint: Callable[[asyncio.Event, list[str]], None],
) -> bool:
    """Run work(on_event, stop) under the live display (none in JSON mode); True when Ctrl-C stopped it."""
    display = None if console.json_mode else RunDisplay(console.out, total)
    stop_reason: list[str] = []

    async def go() -> Any:
        stop = asyncio.Event()
        restore = _on_sigint(lambda: on_first_sigint(stop, stop_reason))
        try:
            return await work(display.on_event if display else None, stop)
        finally:
            restore()

    if display is not None:
        with display:
            asyncio.run(go())
    else:
        asyncio.run(go())
    return bool(stop_reason)


def _drive_celery(console: Console, run_id: str, total: int, *, detach: bool) -> int:
    """Publish the run to the Celery workers, then follow it from the database under the live display."""
    from workers.celery_app import make_app
    from workers.celery_dispatch import PublishError, dispatch, follow

    settings = context.settings()
    app = make_app(settings, tasks=False)
    try:
        dispatch(context.engine(), app, run_id)
    except PublishError as e:
        console.error(f"the Celery broker could not be reached: {e}")
        return _finish(console, run_id, stopped=True)
    if detach:
        console.info(f"run {run_id} dispatched to the Celery workers; see: orchestrate runs show {run_id}")
        if console.json_mode:
            console.json({"run_id": run_id, "dispatched": True})
        return 0

    def celery(on_event: Any, stop: asyncio.Event) -> Any:
        return follow(context.engine(), app, run_id, on_event=on_event, stop=stop,
                      reap_after=settings.deploy.lease_ttl)  # fmt: skip

    stopped = _under_display(
        console, total, celery, lambda stop, flag: _first_detach(console, stop, flag, run_id)
    )
    return _finish(console, run_id, stopped=stopped)


def _first_detach(console: Console, stop: asyncio.Event, flag: list[str], run_id: str) -> None:
    if not stop.is_set():
        flag.append("sigint")
        stop.set()
        console.warning(
            f"no longer following; the workers go on (orchestrate runs show {run_id}; stop: runs halt)"
        )


def _first_interrupt(console: Console, stop: asyncio.Event, flag: list[str]) -> None:
    if not stop.is_set():
        flag.append("sigint")
        stop.set()
        console.warning("stopping: devices finish the step they are in (Ctrl-C again to abort at once)")


def _on_sigint(handler: Callable[[], None]) -> Callable[[], None]:
    """Call handler on the first SIGINT; later ones raise KeyboardInterrupt as usual. Returns a restorer."""
    loop = asyncio.get_running_loop()

    def once() -> None:
        loop.remove_signal_handler(signal.SIGINT)  # the default handler is back for a second Ctrl-C
        handler()

    try:
        loop.add_signal_handler(signal.SIGINT, once)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
        return lambda: None

    def restore() -> None:
        try:
            loop.remove_signal_handler(signal.SIGINT)
        except (RuntimeError, ValueError):
            pass

    return restore


def exit_code(statuses: list[str]) -> int:
    """1 when a device failed (or was left unfinished), else 3 when one is unverified, else 4 when one
    awaits its CA trust, else 0."""
    left = {s for s in statuses if s not in _OK_JOBS}
    if left - {JobStatus.UNVERIFIED.value, JobStatus.AWAITING_TRUST.value}:
        return EXIT_FAILED
    if JobStatus.UNVERIFIED.value in left:
        return EXIT_UNVERIFIED
    return EXIT_AWAITING_TRUST if left else 0


def _finish(console: Console, run_id: str, *, stopped: bool) -> int:
    """Print the run's outcome from the database (the truth) and return the exit code."""
    with session_scope(context.engine()) as s:
        detail = reports.show_run(s, run_id)
    bad = [j for j in detail.jobs if j.status not in _OK_JOBS]
    code = EXIT_INTERRUPTED if stopped else exit_code([j.status for j in detail.jobs])
    if console.json_mode:
        console.json(
            {
                "run_id": run_id,
                "status": detail.run.status,
                "stopped": stopped,
                "counts": detail.run.counts,
                "halt_reason": detail.run.halt_reason,
                "devices": [
                    {"device": j.device, "status": j.status, "step": _failed_step(j),
                     "error_type": j.error_type, "message": j.error_message}
                    for j in detail.jobs
                ],
            }
        )  # fmt: skip
        return code
    rows = detail.jobs if len(detail.jobs) <= _FULL_TABLE_MAX else bad
    title = f"run {run_id[:12]}: {detail.run.status}"
    if rows is bad and bad:
        title += f" (the {len(bad)} device(s) that did not succeed)"
    if rows:
        console.table(
            title,
            ["device", "status", "failed step" if not stopped else "step", "reason"],
            [
                [j.device, j.status, _failed_step(j) if j.status not in _OK_JOBS else "", _reason(j)]
                for j in rows
            ],
        )
    summary = ", ".join(f"{n} {s}" for s, n in detail.run.counts.items())
    console.info(f"{len(detail.jobs)} device(s): {summary}")
    awaiting = sum(1 for j in detail.jobs if j.status == JobStatus.AWAITING_TRUST.value)
    if awaiting:
        console.warning(
            f"{awaiting} device(s) installed but awaiting CA trust: deliver the profile from "
            "`orchestrate certs profile --out FILE` by MDM, then run `orchestrate converge`"
        )
    if detail.run.halt_reason and not stopped:
        console.warning(f"run {detail.run.status}: {detail.run.halt_reason}")
    if stopped:
        console.info(f"resume with: orchestrate runs resume {run_id}")
    return code


def _failed_step(j: reports.JobDetail) -> str | None:
    failed = [name for name, cell in j.steps.items() if cell.status == "failed"]
    return failed[0] if failed else j.current_step


def _reason(j: reports.JobDetail) -> str:
    return ": ".join(x for x in (j.error_type, j.error_message) if x)

