"""The live view of a run, fed with the runner's events (`JobStarted`, `StepFinished`, `JobFinished`).

On a terminal: a Rich Live area with the overall progress (devices done of total, elapsed, ETA) and a
table of counts per step (running, changed, ok, noop, failed); each failure is printed above the live area
as it happens. Not on a terminal (CI logs, pipes): no Live, one plain line per finished device.

It must stay cheap on big fleets (1000 devices, tens of thousands of events): an event only updates
counters (O(1)); the table is rebuilt at most `refresh_per_second` times a second into an immutable
snapshot, which Rich's refresh thread renders (so it never reads counters while they change).

Events are matched by attribute names (duck typing), so this library module needs nothing from `workers`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

__all__ = ["COLUMNS", "RunDisplay", "format_duration"]

# Step outcome columns, in display order ("running" is derived: started and not yet finished).
COLUMNS = ("running", "changed", "ok", "noop", "skipped", "unverified", "failed")
_FAILED_JOB = ("failed",)


def format_duration(seconds: float | None) -> str:
    """`1h02m`, `3m05s`, `12s`; `?` when unknown."""
    if seconds is None or seconds < 0:
        return "?"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


@dataclass(frozen=True)
class _Snapshot:
    total: int
    done: int
    started: int
    failed: int
    steps: tuple[tuple[str, tuple[int, ...]], ...]  # step name -> counts in COLUMNS order
    started_at: float


class _View:
    """What Live renders: the current snapshot, with times computed at render time (so they tick)."""

    def __init__(self, display: RunDisplay) -> None:
        self.display = display

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        snap = self.display.snapshot
        now = self.display.clock()
        yield Text.assemble(
            (f"{self.display.title}  ", "bold"),
            f"{snap.done}/{snap.total} devices done, {snap.started - snap.done} working, ",
            (f"{snap.failed} failed", "red" if snap.failed else ""),
        )
        width = max(10, min(60, options.max_width - 40))
        bar = ProgressBar(total=max(snap.total, 1), completed=snap.done, width=width)
        eta = self.display.eta(now, snap)
        line = Table.grid(padding=(0, 1))
        line.add_row(
            bar,
            f"{(100 * snap.done // snap.total) if snap.total else 100}%",
            f"elapsed {format_duration(now - snap.started_at)}",
            f"ETA {format_duration(eta)}",
        )
        yield line
        if snap.steps:
            t = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
            t.add_column("step")
            for c in COLUMNS:
                t.add_column(c, justify="right")
            for name, counts in snap.steps:
                cells = [str(n) if n else "" for n in counts]
                if counts[-1]:
                    cells[-1] = f"[red]{counts[-1]}[/red]"
                t.add_row(escape(name), *cells)
            yield t


class RunDisplay:
    """Feed `on_event` with run events; use as a context manager around the drive.

    console: where to draw (a Rich console). total: devices the driver will work on. On a terminal a Live
    area is shown; otherwise `plain_line` is called (default: printed) once per finished device. clock is
    injectable for tests."""

    def __init__(
        self,
        console: Console,
        total: int,
        *,
        title: str = "deploy",
        refresh_per_second: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
        live: bool | None = None,
    ) -> None:
        self.console = console
        self.total = total
        self.title = title
        self.clock = clock
        self.interval = 1.0 / refresh_per_second
        self.use_live = console.is_terminal if live is None else live
        self._live: Live | None = None
        self._started_at = clock()
        self._last_snapshot = float("-inf")
        self._steps: dict[str, Counter[str]] = {}
        self._steps_of: dict[str, tuple[str, ...]] = {}  # device -> its workflow's steps (while it runs)
        self._running: dict[str, str] = {}  # device -> the step it is in now
        self._started: set[str] = set()
        self._done: dict[str, str] = {}  # device -> job status
        self.failures: list[tuple[str, str | None, str | None, str | None]] = []
        self.snapshot = self._make_snapshot()

    # ------------------------------------------------------------ context

    def __enter__(self) -> RunDisplay:
        self._started_at = self.clock()
        self.snapshot = self._make_snapshot()
        if self.use_live:
            self._live = Live(
                _View(self),
                console=self.console,
                refresh_per_second=1.0 / self.interval,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Draw the final state and stop the Live area (idempotent)."""
        self.snapshot = self._make_snapshot()
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    # ------------------------------------------------------------ events

    def on_event(self, ev: Any) -> None:
        """Take one run event (JobStarted, StepFinished or JobFinished); anything else is ignored."""
        kind = type(ev).__name__
        if kind == "JobStarted":
            self._job_started(ev.device, tuple(ev.steps))
        elif kind == "StepFinished":
            self._step_finished(ev.device, ev.step, ev.status)
        elif kind == "JobFinished":
            self._job_finished(ev.device, ev.status, ev.step, ev.error_type, ev.message)
        else:
            return
        now = self.clock()
        if now - self._last_snapshot >= self.interval:
            self._last_snapshot = now
            self.snapshot = self._make_snapshot()

    def _counter(self, step: str) -> Counter[str]:
        c = self._steps.get(step)
        if c is None:
            c = self._steps[step] = Counter()
        return c

    def _job_started(self, device: str, steps: tuple[str, ...]) -> None:
        self._started.add(device)
        self._steps_of[device] = steps
        for s in steps:
            self._counter(s)  # columns appear in workflow order
        self._set_running(device, steps[0] if steps else None)

    def _set_running(self, device: str, step: str | None) -> None:
        prev = self._running.pop(device, None)
        if prev is not None:
            self._steps[prev]["running"] -= 1
        if step is not None:
            self._running[device] = step
            self._counter(step)["running"] += 1

    def _step_finished(self, device: str, step: str, status: str) -> None:
        self._counter(step)[status] += 1
        steps = self._steps_of.get(device, ())
        nxt = None
        if status != "failed" and step in steps:
            i = steps.index(step) + 1
            nxt = steps[i] if i < len(steps) else None
        # after a failure only the always-run steps follow; they are counted as they finish
        self._set_running(device, nxt)

    def _job_finished(
        self, device: str, status: str, step: str | None, error_type: str | None, message: str | None
    ) -> None:
        self._set_running(device, None)
        self._steps_of.pop(device, None)
        if device in self._done:
            return  # a duplicate report
        self._done[device] = status
        if status in _FAILED_JOB:
            self.failures.append((device, step, error_type, message))
        self._print_finished(device, status, step, error_type, message)

    def _print_finished(
        self, device: str, status: str, step: str | None, error_type: str | None, message: str | None
    ) -> None:
        if self.use_live:
            if status in _FAILED_JOB:
                where = f" at {step}" if step else ""
                what = ": ".join(x for x in (error_type, message) if x) or "no reason given"
                self.console.print(f"[red]✗[/red] {escape(device)} failed{escape(where)}: {escape(what)}")
            return
        n = len(self._done)
        parts = [f"[{n}/{self.total}]", device, status]
        if step and status != "succeeded":
            parts.append(f"at {step}")
        reason = ": ".join(x for x in (error_type, message) if x)
        line = " ".join(parts) + (f" — {reason}" if reason else "")
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    # ------------------------------------------------------------ state

    def _make_snapshot(self) -> _Snapshot:
        return _Snapshot(
            total=self.total,
            done=len(self._done),
            started=len(self._started | set(self._done)),
            failed=sum(1 for s in self._done.values() if s in _FAILED_JOB),
            steps=tuple((name, tuple(max(0, c[col]) for col in COLUMNS)) for name, c in self._steps.items()),
            started_at=self._started_at,
        )

    def eta(self, now: float, snap: _Snapshot | None = None) -> float | None:
        """Seconds until every device is done, from the rate so far; None before the first device is done."""
        snap = snap or self.snapshot
        if snap.done >= snap.total:
            return 0.0
        if snap.done == 0:
            return None
        rate = snap.done / max(now - snap.started_at, 1e-6)
        return (snap.total - snap.done) / rate

    @property
    def done(self) -> dict[str, str]:
        """Device -> job status, for the devices that finished."""
        return dict(self._done)

    def step_counts(self) -> dict[str, dict[str, int]]:
        """Step -> column -> count (current, not throttled)."""
        return {name: {col: max(0, c[col]) for col in COLUMNS} for name, c in self._steps.items()}
