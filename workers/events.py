"""What a run reports while it goes: typed events a display (or a test) subscribes to.

Events carry names, statuses and typed reasons only — never a secret, never raw command output."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobStarted:
    run_id: str
    device: str
    steps: tuple[str, ...]


@dataclass(frozen=True)
class StepFinished:
    run_id: str
    device: str
    step: str
    status: str  # a StepStatus value
    noop_reason: str | None
    error_type: str | None
    message: str | None
    duration_ms: int


@dataclass(frozen=True)
class JobFinished:
    run_id: str
    device: str
    status: str  # a JobStatus value
    step: str | None  # the step that failed, if any
    error_type: str | None
    message: str | None


RunEvent = JobStarted | StepFinished | JobFinished
