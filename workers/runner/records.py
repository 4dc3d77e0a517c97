"""Recording the steps of one device job: each step's start and end through the `Recorder` (redacted, with
an event for the live display), and what the job has come to so far — the steps that changed the Mac, the
first failure, why it is unverified or awaits CA trust. An exec step's outcome is read here too: which
command failed, why (the step's own `explain`), or that the Mac was already so."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from orchestrator.redact import Redactor
from orchestrator.state.models import StepStatus
from tasks.model import Command, FailureReason, Plan, StepDef
from workers.events import RunEvent, StepFinished
from workers.runner.recorder import Recorder
from workers.ssh import StepOutcome

TAIL_CHARS = 4000

Begun = tuple[str, float]  # (step record id, monotonic start)


class Failed(Exception):
    def __init__(self, step: str, error_type: str, message: str) -> None:
        super().__init__(message)
        self.step, self.error_type, self.message = step, error_type, message


def worded(reason: FailureReason) -> str:
    return reason.message + (f" — {reason.hint}" if reason.hint else "")


class StepRecords:
    """The records of one device job; `failure`, `unverified` and `awaiting` keep the first of each."""

    def __init__(
        self,
        recorder: Recorder,
        emit: Callable[[RunEvent], None],
        redactor: Redactor,
        *,
        run_id: str,
        job_id: str,
        device: str,
        attempt: int,
        prefix: str,
    ) -> None:
        self.rec = recorder
        self.emit = emit
        self.redactor = redactor
        self.run_id, self.job_id, self.device, self.attempt = run_id, job_id, device, attempt
        self.prefix = prefix  # e.g. "rollback:": a second pass over the same job records distinct steps
        self.changed: set[str] = set()
        self.failure: Failed | None = None
        self.unverified: tuple[str, str] | None = None  # (step, why): verify found no evidence either way
        self.awaiting: tuple[str, FailureReason] | None = None  # (step, why): the device awaits CA trust

    def redact(self, text: str) -> str:
        return self.redactor.redact(text)

    async def flush(self) -> None:
        await self.rec.flush()

    def begin(self, step: str, plan: Plan | None = None) -> Begun:
        commands = json.dumps([c.as_json() for c in plan.commands]) if plan is not None else "[]"
        step = self.prefix + step
        self.rec.job(self.job_id, current_step=step)
        step_id = self.rec.step_started(self.job_id, step, self.attempt, self.redact(commands))
        return step_id, time.monotonic()

    def end(
        self,
        step: str,
        begun: Begun,
        status: StepStatus,
        *,
        noop_reason: str | None = None,
        exit_code: int | None = None,
        error_type: str | None = None,
        message: str | None = None,
        tail: str | None = None,
    ) -> None:
        step_id, t0 = begun
        ms = int((time.monotonic() - t0) * 1000)
        if status is StepStatus.CHANGED:
            self.changed.add(step)
        text = message if tail is None else (f"{message}\n{tail}" if message else tail)
        self.rec.step_finished(
            step_id,
            status=status.value,
            noop_reason=noop_reason,
            exit_code=exit_code,
            error_type=error_type,
            duration_ms=ms,
            output_tail=self.redact(text)[-TAIL_CHARS:] if text else None,
        )
        shown = self.redact(message) if message else None
        self.emit(StepFinished(self.run_id, self.device, self.prefix + step, status.value,
                               noop_reason, error_type, shown, ms))

    def fail(self, step: str, begun: Begun, error_type: str, message: str, **kw: Any) -> Failed:
        message = self.redact(message)
        self.end(step, begun, StepStatus.FAILED, error_type=error_type, message=message, **kw)
        return Failed(self.prefix + step, error_type, message)

    def skip(self, step: str, reason: str, begun: Begun | None = None) -> None:
        begun = begun or self.begin(step)
        self.end(step, begun, StepStatus.SKIPPED, noop_reason=reason)

    def await_trust(self, sd: StepDef, begun: Begun, why: list[FailureReason], tail: str | None) -> None:
        """A trust change macOS refused (or a profile not yet delivered): recorded on the step as a failure
        with its typed reason, but the device goes on and ends awaiting trust, not failed."""
        first = why[0]
        message = "; ".join(dict.fromkeys(w.message for w in why))
        message += f" — {first.hint}" if first.hint else ""
        self.fail(sd.name, begun, first.error_type, message, tail=tail)
        if self.awaiting is None:
            self.awaiting = (sd.name, first)

    def exec_step(
        self,
        sd: StepDef,
        begun: Begun,
        mine: list[tuple[Command, StepOutcome | None]],
        error: tuple[str, str] | None,
        cleanup: bool,
    ) -> None:
        """Records one EXEC step from the outcomes of its commands (None: the exec ended before it);
        `error`: why the exec ended early, `cleanup`: an always-step, whose failure fails no device."""
        tail = "\n".join(
            (o.stdout + o.stderr).decode("utf-8", "replace") for _, o in mine if o is not None
        ).strip()
        awaited: list[FailureReason] = []
        for c, o in mine:
            if o is None or not o.ran:
                if error is not None:
                    f = self.fail(sd.name, begun, error[0], error[1], tail=tail or None)
                    if self.failure is None:
                        self.failure = f
                else:
                    why = "not run: an earlier step failed"
                    self.end(sd.name, begun, StepStatus.SKIPPED, noop_reason=why)
                return
            trust_trouble = bool(sd.awaiting_trust_on) and o.exit_status != 0 and not o.skipped
            if not trust_trouble and o.exit_status in c.ok_codes:
                continue
            reason = _explain(sd, c, o)
            if trust_trouble and reason.error_type in sd.awaiting_trust_on:
                awaited.append(reason)
                continue
            # any other trouble fails the device, whatever ok_codes let the exec run past
            f = self.fail(sd.name, begun, reason.error_type, worded(reason), exit_code=o.exit_status,
                          tail=tail or None)
            if self.failure is None and not cleanup:
                self.failure = f
            return
        if awaited:
            self.await_trust(sd, begun, awaited, tail or None)
            return
        if all(o is not None and o.skipped for _, o in mine):
            probes = "; ".join(" ".join(c.unless or ()) for c, _ in mine)
            self.end(sd.name, begun, StepStatus.NOOP, noop_reason=f"already so: {probes} succeeded")
            return
        mutated = any(c.mutating and o is not None and not o.skipped for c, o in mine)
        self.end(sd.name, begun, StepStatus.CHANGED if mutated else StepStatus.OK, exit_code=0,
                 tail=tail or None)


def _explain(sd: StepDef, c: Command, o: StepOutcome) -> FailureReason:
    out, err = o.stdout.decode("utf-8", "replace"), o.stderr.decode("utf-8", "replace")
    if sd.explain is not None:
        reason = sd.explain(c.argv, o.exit_status, out, err)
        if reason is not None:
            return reason
    last = (err.strip() or out.strip()).splitlines()[-1:] or [""]
    return FailureReason(
        "CommandFailed", f"`{' '.join(c.argv)}` exited {o.exit_status}: {last[0][:300]}"
    )
