"""How every run-driving command (deploy, upgrade, the lifecycle commands, converge, `status --refresh`,
`runs resume|retry`) hands its planned run to a driver: the executor chosen (this process, or the Celery
workers), the live display, Ctrl-C, the run's outcome printed from the database, and the exit code.

With `remote` (read-only looks at Macs that record no run) the only CLI modules that import `workers`
(an import-linter contract in pyproject.toml holds the others to it).

Exit codes: 0 every device succeeded (or had nothing to do); 1 a device failed or was refused; 2 bad input;
3 none failed but some are unverified (running, no confirmed Switch connection); 4 none failed or unverified
but some await their CA trust; 130 stopped by Ctrl-C (resumable).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import nullcontext
from typing import Any

from orchestrator import reports
from orchestrator.cli import context
from orchestrator.cli.exits import (
    EXIT_AWAITING_TRUST,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_UNVERIFIED,
)
from orchestrator.console import Console
from orchestrator.live import RunDisplay
from orchestrator.runs import RESUME_HINT
from orchestrator.state.db import session_scope
from orchestrator.state.models import JobStatus
from workers.local import drive

_OK_JOBS = ("succeeded", "skipped")
_FULL_TABLE_MAX = 100  # beyond this many devices the final table lists only the ones that did not succeed


def print_refused(console: Console, refused: dict[str, tuple[str, str]]) -> None:
    """The devices planning refused before any connection, one error line each."""
    for name, (etype, msg) in sorted(refused.items()):
        console.error(f"{name}: refused ({etype}): {msg}")


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
    """Drive run_id under the live display (none in JSON mode), then print the final table (or JSON);
    the exit code.

    executor (default: the configured one) "local" runs the devices in this process; "celery" publishes
    them to the workers and follows the run from the database (with detach: returns once dispatched).
    Ctrl-C once stops cleanly (resumable; with celery it stops following, the workers go on); twice
    raises KeyboardInterrupt. A wave confirmation (confirm) and a retry of some jobs (only) run on the
    local driver."""
    settings, engine = context.settings(), context.engine()
    chosen = executor or ("local" if confirm or only else settings.executor.value)
    if chosen not in ("local", "celery"):
        console.error(f"--executor {chosen!r}: use local or celery")
        return EXIT_BAD_INPUT
    if chosen == "celery" and (confirm or only):
        console.error("confirming waves and retrying some devices need the local executor (--executor local)")
        return EXIT_BAD_INPUT
    if chosen == "local" and detach:
        console.error("--detach needs the celery executor (--executor celery or executor = \"celery\")")
        return EXIT_BAD_INPUT
    if chosen == "local":
        live = _Live(console, total)
        live.run(
            drive(engine, settings, run_id, concurrency=concurrency, on_event=live.on_event, stop=live.stop,
                  confirm=confirm, only=only),
            "stopping: devices finish the step they are in (Ctrl-C again to abort at once)",
        )  # fmt: skip
        return finish(console, run_id, stopped=live.stopped)
    # Celery is loaded only for a run that uses it: it costs most of a second at every local run's start
    from workers.celery_app import make_app
    from workers.celery_dispatch import PublishError, dispatch, follow

    app = make_app(settings, tasks=False)
    try:
        dispatch(engine, app, run_id)
    except PublishError as e:
        console.error(f"the Celery broker could not be reached: {e}")
        return finish(console, run_id, stopped=True)
    if detach:
        console.info(f"run {run_id} dispatched to the Celery workers; see: orchestrate runs show {run_id}")
        if console.json_mode:
            console.json({"run_id": run_id, "dispatched": True})
        return 0
    live = _Live(console, total)
    live.run(
        follow(engine, app, run_id, on_event=live.on_event, stop=live.stop,
               reap_after=settings.deploy.lease_ttl),
        f"no longer following; the workers go on (orchestrate runs show {run_id}; stop: runs halt)",
    )  # fmt: skip
    return finish(console, run_id, stopped=live.stopped)


class _Live:
    """The live display (none in JSON mode) and the first Ctrl-C around one driver coroutine: that Ctrl-C
    sets `stop` (the driver winds down) and warns; a second one raises KeyboardInterrupt as usual."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.display = None if console.json_mode else RunDisplay(console.out, total)
        self.on_event = self.display.on_event if self.display else None
        self.stop = asyncio.Event()  # bound to the loop at its first wait (Python 3.10+)
        self.stopped = False

    def run(self, work: Coroutine[Any, Any, Any], on_stop: str) -> None:
        """Run work to its end; on_stop is the warning the first Ctrl-C prints."""

        def first_sigint() -> None:
            if not self.stop.is_set():
                self.stopped = True
                self.stop.set()
                self.console.warning(on_stop)

        with self.display or nullcontext(), asyncio.Runner() as runner:
            restore = _on_sigint(runner.get_loop(), first_sigint)
            try:
                runner.run(work)
            finally:
                restore()


def _on_sigint(loop: asyncio.AbstractEventLoop, handler: Callable[[], None]) -> Callable[[], None]:
    """Call handler on the first SIGINT; later ones raise KeyboardInterrupt as usual. Returns a restorer.
    Installed before the loop runs, so asyncio's own Ctrl-C handling (cancel the main task) stays out."""

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
    if left - set(JobStatus.recheck()):
        return EXIT_FAILED
    if JobStatus.UNVERIFIED.value in left:
        return EXIT_UNVERIFIED
    return EXIT_AWAITING_TRUST if left else 0


def finish(console: Console, run_id: str, *, stopped: bool) -> int:
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
        console.info(f"{RESUME_HINT} {run_id}")
    return code


def _failed_step(j: reports.JobDetail) -> str | None:
    failed = [name for name, cell in j.steps.items() if cell.status == "failed"]
    return failed[0] if failed else j.current_step


def _reason(j: reports.JobDetail) -> str:
    return ": ".join(x for x in (j.error_type, j.error_message) if x)
