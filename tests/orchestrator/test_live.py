"""The live run display, fed with synthetic run events (the runner's real event types): on a terminal
(Rich Live, failures above it) and off one (one plain line per finished device)."""

from __future__ import annotations

import io

from rich.console import Console

from orchestrator.live import RunDisplay, format_duration
from workers.events import JobFinished, JobStarted, StepFinished

STEPS = ("preflight", "push", "install", "verify", "cleanup")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _device(d: RunDisplay, name: str, fail_at: str | None = None) -> None:
    d.on_event(JobStarted("r1", name, STEPS))
    for step in STEPS:
        if step == fail_at:
            d.on_event(StepFinished("r1", name, step, "failed", None, "InstallFailed", "installer: exit 1", 30))
            d.on_event(StepFinished("r1", name, "cleanup", "changed", None, None, None, 5))
            d.on_event(JobFinished("r1", name, "failed", step, "InstallFailed", "installer: exit 1"))
            return
        status = "noop" if step == "push" else "changed"
        d.on_event(StepFinished("r1", name, step, status, "cached" if status == "noop" else None, None, None, 10))
    d.on_event(JobFinished("r1", name, "succeeded", None, None, None))


def test_plain_output_is_one_line_per_finished_device() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    with RunDisplay(console, 3) as d:
        assert not d.use_live
        _device(d, "mac-01")
        _device(d, "mac-02", fail_at="install")
        _device(d, "mac-03")
    lines = buf.getvalue().splitlines()
    assert lines == [
        "[1/3] mac-01 succeeded",
        "[2/3] mac-02 failed at install — InstallFailed: installer: exit 1",
        "[3/3] mac-03 succeeded",
    ]
    assert d.failures == [("mac-02", "install", "InstallFailed", "installer: exit 1")]
    counts = d.step_counts()
    assert counts["install"] == {"running": 0, "changed": 2, "ok": 0, "noop": 0, "skipped": 0, "unverified": 0,
                                 "failed": 1}
    assert counts["push"]["noop"] == 3 and counts["cleanup"]["changed"] == 3
    assert all(c["running"] == 0 for c in counts.values())


def test_running_counts_follow_each_device() -> None:
    d = RunDisplay(Console(file=io.StringIO()), 2, live=False)
    d.on_event(JobStarted("r1", "a", STEPS))
    d.on_event(JobStarted("r1", "b", STEPS))
    assert d.step_counts()["preflight"]["running"] == 2
    d.on_event(StepFinished("r1", "a", "preflight", "ok", None, None, None, 3))
    c = d.step_counts()
    assert c["preflight"]["running"] == 1 and c["push"]["running"] == 1 and c["preflight"]["ok"] == 1
    d.on_event(JobFinished("r1", "b", "interrupted", "preflight", None, None))  # stopped mid-step
    assert d.step_counts()["preflight"]["running"] == 0
    assert d.done == {"b": "interrupted"} and d.failures == []


def test_terminal_shows_live_progress_and_prints_failures_above() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    clock = Clock()
    with RunDisplay(console, 4, clock=clock, refresh_per_second=1000) as d:
        assert d.use_live
        _device(d, "mac-01")
        clock.t += 10
        _device(d, "mac-02", fail_at="verify")
        clock.t += 10
        d.on_event(JobStarted("r1", "mac-03", STEPS))
        assert d.eta(clock.t) == 20.0  # two done in 20 s, two to go
    out = buf.getvalue()
    assert "✗ mac-02 failed at verify: InstallFailed: installer: exit 1" in out
    assert "2/4 devices done, 1 working, 1 failed" in out
    assert "ETA 20s" in out or "ETA" in out
    for step in STEPS:
        assert step in out
    assert "mac-01 succeeded" not in out  # successes are counted, not listed, on a terminal


def test_many_events_are_cheap_and_snapshots_are_throttled() -> None:
    clock = Clock()
    d = RunDisplay(Console(file=io.StringIO()), 1000, clock=clock, live=False)
    snapshots = set()
    for i in range(1000):
        _device(d, f"mac-{i:04d}")  # 12 events a device
        snapshots.add(id(d.snapshot))
    assert len(snapshots) == 1  # the clock never moved: one snapshot taken, none rebuilt per event
    clock.t += 1
    d.on_event(JobStarted("r1", "extra", STEPS))
    assert d.snapshot.done == 1000
    assert d.step_counts()["install"]["changed"] == 1000


def test_eta_and_durations() -> None:
    assert format_duration(None) == "?" and format_duration(5) == "5s"
    assert format_duration(185) == "3m05s" and format_duration(3720) == "1h02m"
    clock = Clock()
    d = RunDisplay(Console(file=io.StringIO()), 2, clock=clock, live=False)
    assert d.eta(clock.t) is None
