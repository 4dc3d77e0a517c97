"""One device through one workflow: connect, gather facts, plan every step, execute, record each step.

The plan is made once from the facts of ONE round trip (planners are pure and idempotent). Consecutive EXEC
steps share one exec — a script with a marker after every command — so a full install costs a handful of
round trips, yet every step's outcome is recorded on its own. PUSH steps upload over SFTP; the VERIFY step
polls read-only probes until the workflow's judge decides. Steps marked `always` (unmount, cleanup) still
run after a failure or an interruption when their partner step changed something.

Nothing here knows the database: records go through the `Recorder`, events through `emit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.redact import LOG_REDACTOR, Redactor
from orchestrator.state.models import JobStatus, StepStatus, utcnow
from tasks.evidence import DEFAULT_RULES, VerifyRules
from tasks.install.verify import LOG_MARK, PollSpec, is_poll, parse_log_mark
from tasks.model import Command, FailureReason, Phase, Plan, ProbeOutput, StepDef, Workflow
from workers.events import JobFinished, JobStarted, RunEvent, StepFinished
from workers.runner.recorder import Recorder
from workers.ssh import (
    CommandTimeout,
    Connection,
    HostKeyPolicy,
    ScriptLine,
    SshAuth,
    SshTarget,
    StepOutcome,
    SudoMode,
    Timeouts,
    TransportError,
    UploadItem,
    connect,
    upload_many_with_retry,
)
from workers.ssh.exec import split_steps

TAIL_CHARS = 4000
CONNECT_STEP = "connect"
FACTS_STEP = "facts"


class Materials:
    """What a device's plan refers to by name: upload sources ("dmg", "pfx", "ca:<sha256>") and named
    stdin inputs. Secret ones are produced on first use by `produce` and registered with the redactor."""

    def __init__(
        self,
        sources: Mapping[str, Path | bytes],
        produce: Callable[[str], bytes] | None = None,
        redactor: Redactor | None = None,
        shared: list[bytes] | None = None,
    ) -> None:
        self._sources = dict(sources)
        self._produce = produce
        self.redactor = redactor or Redactor()
        self.shared = shared if shared is not None else []  # also registered with the process-wide redactor

    def release(self) -> None:
        """The job is over: stop masking its secrets process-wide (keeps that redactor small)."""
        while self.shared:
            LOG_REDACTOR.discard(self.shared.pop())

    def source(self, name: str) -> Path | bytes:
        if name not in self._sources:
            if self._produce is None:
                raise KeyError(f"no upload source {name!r}")
            self._sources[name] = self._produce(name)
        return self._sources[name]

    def add_source(self, name: str, value: Path | bytes) -> None:
        self._sources[name] = value

    def stdin(self, name: str) -> bytes:
        value = self.source(f"stdin:{name}")
        assert isinstance(value, bytes)
        return value


@dataclass
class DeviceWork:
    """Everything needed to work on one device (built from the database by the driver)."""

    job_id: str
    device_id: str
    name: str
    attempt: int
    target: SshTarget
    auth: SshAuth
    host_keys: HostKeyPolicy
    sudo: SudoMode
    params: Any
    materials: Materials
    on_new_host_key: Callable[[str, str], None] | None = None  # (key line, fingerprint): pin it


@dataclass(frozen=True)
class RunSettings:
    run_id: str
    workflow: Workflow
    timeouts: Timeouts = field(default_factory=Timeouts)
    verify_timeout: float = 120.0
    verify_interval: float = 0.25
    verify_rules: VerifyRules = DEFAULT_RULES  # settings [verify]: the log's connected and error patterns
    private_dir: str | None = None  # where PUSH uploads go (the workflow's params say the same)
    step_prefix: str = ""  # e.g. "rollback:" so a second pass over the same job records distinct steps


@dataclass
class DeviceResult:
    name: str
    status: str  # JobStatus value
    step: str | None = None
    error_type: str | None = None
    message: str | None = None
    facts: Any = None
    connected: bool | None = None
    round_trips: int = 0
    mutating_commands: int = 0
    duration: float = 0.0
    plans: dict[str, Plan] = field(default_factory=dict)
    executed: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (step, argv) that ran OK


class _Failed(Exception):
    def __init__(self, step: str, error_type: str, message: str) -> None:
        super().__init__(message)
        self.step, self.error_type, self.message = step, error_type, message


class _Interrupted(Exception):
    pass


def _probe(o: StepOutcome) -> ProbeOutput:
    return ProbeOutput(
        tuple(o.argv), o.exit_status, o.stdout.decode("utf-8", "replace"), o.stderr.decode("utf-8", "replace")
    )


def _line(c: Command) -> ScriptLine:
    return ScriptLine(
        list(c.argv),
        keep_stdin=c.stdin is not None,
        unless=list(c.unless) if c.unless is not None else None,
        ok_codes=c.ok_codes,
    )


class DeviceRunner:
    """Runs one DeviceWork; `run()` never raises for the device's own failures (they are the result)."""

    def __init__(
        self,
        work: DeviceWork,
        settings: RunSettings,
        recorder: Recorder,
        emit: Callable[[RunEvent], None] | None = None,
        stop: asyncio.Event | None = None,
        plan_only: bool = False,
    ) -> None:
        self.w = work
        self.s = settings
        self.rec = recorder
        self.emit = emit or (lambda _e: None)
        self.stop = stop or asyncio.Event()
        self.plan_only = plan_only
        self.conn: Connection | None = None
        self.result = DeviceResult(name=work.name, status=JobStatus.RUNNING.value)
        self.changed: set[str] = set()
        self.failure: _Failed | None = None
        self.unverified: tuple[str, str] | None = None  # (step, why): verify found no evidence either way
        self.log_mark: int | None = None  # the client log's size right before this run's (re)start
        self.awaiting: tuple[str, FailureReason] | None = None  # (step, why): the device awaits CA trust
        self._started = time.monotonic()

    # ------------------------------------------------------------------ recording helpers

    def _redact(self, text: str) -> str:
        return self.w.materials.redactor.redact(text)

    def _begin(self, step: str, plan: Plan | None = None) -> tuple[str, float]:
        commands = json.dumps([c.as_json() for c in plan.commands]) if plan is not None else "[]"
        step = self.s.step_prefix + step
        self.rec.job(self.w.job_id, current_step=step)
        step_id = self.rec.step_started(self.w.job_id, step, self.w.attempt, self._redact(commands))
        return step_id, time.monotonic()

    def _end(
        self,
        step: str,
        begun: tuple[str, float],
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
            output_tail=self._redact(text)[-TAIL_CHARS:] if text else None,
        )
        shown = self._redact(message) if message else None
        self.emit(StepFinished(self.s.run_id, self.w.name, self.s.step_prefix + step, status.value,
                               noop_reason, error_type, shown, ms))

    def _fail(self, step: str, begun: tuple[str, float], error_type: str, message: str, **kw: Any) -> _Failed:
        message = self._redact(message)
        self._end(step, begun, StepStatus.FAILED, error_type=error_type, message=message, **kw)
        return _Failed(self.s.step_prefix + step, error_type, message)

    # ------------------------------------------------------------------ the run

    async def run(self) -> DeviceResult:
        names = (CONNECT_STEP, FACTS_STEP, *(s.name for s in self.s.workflow.steps))
        self.emit(JobStarted(self.s.run_id, self.w.name, names))
        try:
            await self._connect()
            facts = await self._facts()
            plans = {sd.name: sd.planner(facts, self.w.params) for sd in self.s.workflow.steps}
            self.result.plans = plans
            if not self.plan_only:
                await self._execute(facts, plans)
        except _Failed as f:
            self.failure = f
        except _Interrupted:
            self.result.status = JobStatus.INTERRUPTED.value
        except asyncio.CancelledError:
            self.result.status = JobStatus.INTERRUPTED.value
            self._finish()
            await self._close()
            raise
        finally:
            if self.conn is not None:
                self.result.round_trips = self.conn.round_trips
        self._finish()
        await self._close()
        return self.result

    def _finish(self) -> None:
        r = self.result
        if self.failure is not None:
            r.status = JobStatus.FAILED.value
            r.step, r.error_type, r.message = self.failure.step, self.failure.error_type, self.failure.message
        elif r.status == JobStatus.RUNNING.value and self.unverified is not None:
            r.status = JobStatus.UNVERIFIED.value
            r.step, r.error_type, r.message = self.unverified[0], "Unverified", self.unverified[1]
        elif self.awaiting is not None and r.status == JobStatus.RUNNING.value:
            step, why = self.awaiting
            r.status = JobStatus.AWAITING_TRUST.value
            r.step, r.error_type = self.s.step_prefix + step, why.error_type
            r.message = why.message + (f" — {why.hint}" if why.hint else "")
        elif r.status == JobStatus.RUNNING.value:
            r.status = JobStatus.SUCCEEDED.value
        r.duration = time.monotonic() - self._started
        self.rec.job(
            self.w.job_id,
            status=r.status,
            current_step=r.step,
            error_type=r.error_type,
            error_message=r.message,
            ended_at=None if r.status == JobStatus.INTERRUPTED.value else utcnow(),
        )
        self.emit(JobFinished(self.s.run_id, self.w.name, r.status, r.step, r.error_type, r.message))

    async def _close(self) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def _connect(self) -> None:
        begun = self._begin(CONNECT_STEP)
        try:
            self.conn = await connect(self.w.target, self.w.host_keys, self.w.auth, self.s.timeouts)
        except TransportError as e:
            raise self._fail(CONNECT_STEP, begun, type(e).__name__, str(e)) from None
        if self.conn.host_key_is_new and self.w.on_new_host_key is not None:
            self.w.on_new_host_key(self.conn.host_key, self.conn.host_key_fingerprint)
        self._end(CONNECT_STEP, begun, StepStatus.OK)

    async def _reconnect(self) -> Connection:
        if self.conn is not None and not self.conn.is_closed:
            return self.conn
        self.conn = await connect(self.w.target, self.w.host_keys, self.w.auth, self.s.timeouts)
        return self.conn

    async def _facts(self) -> Any:
        assert self.conn is not None
        wf = self.s.workflow
        begun = self._begin(FACTS_STEP)
        named = wf.fact_commands(self.w.params)
        try:
            res = await self.conn.run_script(
                [ScriptLine(list(c.argv)) for _, c in named], sudo=self.w.sudo, stop_on_error=False,
                timeout=self.s.timeouts.command * len(named),  # as every exec: the command limit per command
            )
        except TransportError as e:
            raise self._fail(FACTS_STEP, begun, type(e).__name__, str(e)) from None
        outputs = {name: _probe(o) for (name, _), o in zip(named, res.steps, strict=True)}
        try:
            facts = wf.parse_facts(self.w.params, outputs)
        except ValueError as e:
            msg = f"could not read the Mac's facts: {e}"
            raise self._fail(FACTS_STEP, begun, "UnexpectedFacts", msg) from None
        self.result.facts = facts
        as_json = getattr(facts, "as_json", None)
        facts_doc = as_json() if callable(as_json) else {}
        # Only what this workflow's facts say: a workflow without a fact leaves the recorded value alone.
        known = {"reported_hostname": "hostname", "arch": "arch", "macos_version": "macos_version",
                 "installed_version": "client_version"}  # fmt: skip
        update = {column: facts_doc.get(key) or None for column, key in known.items() if key in facts_doc}
        self.rec.device(
            self.w.device_id,
            facts_json=json.dumps(facts_doc, sort_keys=True, default=str),
            facts_at=utcnow(),
            **update,
        )
        self._end(FACTS_STEP, begun, StepStatus.OK)
        return facts

    async def _execute(self, facts: Any, plans: dict[str, Plan]) -> None:
        batch: list[StepDef] = []
        for sd in self.s.workflow.steps:
            plan = plans[sd.name]
            if self.failure is not None or self.stop.is_set():
                if sd.phase is Phase.EXEC and sd.always:
                    await self._flush_batch(batch)
                    batch = []
                    await self._run_always(sd, plan)
                else:
                    self._skip(sd.name, "not run: an earlier step failed" if self.failure else "interrupted")
                continue
            if plan.refusal is not None:
                await self._flush_batch(batch)
                batch = []
                if self.failure is None:
                    begun = self._begin(sd.name, plan)
                    r = plan.refusal
                    msg = f"{r.message} — {r.hint}" if r.hint else r.message
                    if r.error_type in sd.awaiting_trust_on:
                        self._await_trust(sd, begun, [FailureReason(r.error_type, r.message, r.hint)], None)
                    else:
                        self.failure = self._fail(sd.name, begun, r.error_type, msg)
                continue
            if plan.noop is not None:
                begun = self._begin(sd.name, plan)
                self._end(sd.name, begun, StepStatus.NOOP, noop_reason=plan.noop.reason)
                continue
            if sd.phase is Phase.EXEC:
                batch.append(sd)
                continue
            await self._flush_batch(batch)
            batch = []
            if self.failure is not None or self.stop.is_set():
                self._skip(sd.name, "not run: an earlier step failed" if self.failure else "interrupted")
                continue
            if sd.phase is Phase.PUSH:
                await self._push(sd, plan)
            else:
                await self._verify(sd, plan, facts)
        await self._flush_batch(batch)
        if self.failure is not None:
            raise self.failure
        if self.stop.is_set() and self.result.status == JobStatus.RUNNING.value:
            raise _Interrupted()

    def _skip(self, step: str, reason: str, begun: tuple[str, float] | None = None) -> None:
        begun = begun or self._begin(step)
        self._end(step, begun, StepStatus.SKIPPED, noop_reason=reason)

    async def _run_always(self, sd: StepDef, plan: Plan, begun: tuple[str, float] | None = None) -> None:
        """An always-step after a failure or an interruption. `begun`: its record, when already started."""
        if plan.noop is not None or plan.refusal is not None or not plan.commands:
            self._skip(sd.name, plan.noop.reason if plan.noop else "nothing to undo", begun)
            return
        if sd.requires is not None and sd.requires not in self.changed:
            self._skip(sd.name, f"not needed: {sd.requires} did not run", begun)
            return
        if self.conn is None or self.conn.is_closed:  # e.g. the link dropped during the push: reconnect
            begun = begun or self._begin(sd.name, plan)
            try:
                await self._reconnect()
            except TransportError as e:
                self._fail(sd.name, begun, type(e).__name__, f"could not reconnect to undo: {e}")
                return
        await self._exec_steps([sd], {sd.name: plan}, stop_on_error=False, cleanup=True,
                               begun={sd.name: begun} if begun else None)

    async def _flush_batch(self, batch: list[StepDef]) -> None:
        if not batch:
            return
        plans = self.result.plans
        if self.failure is not None or self.stop.is_set():
            for sd in batch:
                if sd.always:
                    await self._run_always(sd, plans[sd.name])
                else:
                    self._skip(sd.name, "not run: an earlier step failed" if self.failure else "interrupted")
            return
        await self._exec_steps(batch, plans, stop_on_error=True, cleanup=False)

    async def _exec_steps(
        self,
        steps: list[StepDef],
        plans: Mapping[str, Plan],
        *,
        stop_on_error: bool,
        cleanup: bool,
        begun: Mapping[str, tuple[str, float]] | None = None,
    ) -> None:
        """Run the commands of `steps` in one exec per sudo segment and record each step's outcome.

        An always-step of the batch that did not get to run because an earlier one failed (unmount after a
        failed install) runs afterwards, on its own, as after any failure."""
        assert self.conn is not None
        begun = {sd.name: (begun or {}).get(sd.name) or self._begin(sd.name, plans[sd.name]) for sd in steps}
        await self.rec.flush()  # the steps are marked running before anything changes on the Mac
        owner: list[tuple[StepDef, Command]] = [(sd, c) for sd in steps for c in plans[sd.name].commands]
        outcomes: list[StepOutcome | None] = [None] * len(owner)
        error: tuple[str, str] | None = None
        for segment in _segments([c.sudo for _, c in owner]):
            cmds = [owner[i][1] for i in segment]
            try:
                stdin = await self._stdin([c.stdin for c in cmds if c.stdin is not None])
            except (KeyError, ValueError) as e:
                error = ("MissingInput", str(e))
                break
            limit = self.s.timeouts.command * len(cmds)
            try:
                res = await self.conn.run_script(
                    [_line(c) for c in cmds],
                    sudo=self.w.sudo if cmds[0].sudo else None,
                    input=stdin,
                    timeout=limit,
                    stop_on_error=stop_on_error,
                )
            except CommandTimeout as e:
                done = _finished_before(e, [_line(c) for c in cmds])
                for i, o in zip(segment, done, strict=True):
                    if o.ran:
                        outcomes[i] = o  # what finished before the hang is that step's own outcome
                hung = next((c for c, o in zip(cmds, done, strict=True) if not o.ran), cmds[0])
                error = ("CommandTimeout", f"{e.address}: `{' '.join(hung.argv)}` did not finish within the "
                                           f"{e.timeout:g} s limit of its exec — {e.hint}")
                break
            except TransportError as e:
                error = (type(e).__name__, str(e))
                break
            for i, o in zip(segment, res.steps, strict=True):
                outcomes[i] = o
            if stop_on_error and not all(o.ran and o.exit_status in owner[i][1].ok_codes
                                         for i, o in zip(segment, res.steps, strict=True)):
                break
        for (sd, c), got in zip(owner, outcomes, strict=True):
            if got is not None and got.ran and not got.skipped and got.exit_status in c.ok_codes:
                self.result.executed.append((sd.name, c.argv))
                if c.argv == LOG_MARK.argv:  # the log's size before the (re)start: verify reads from there
                    with contextlib.suppress(ValueError):
                        self.log_mark = parse_log_mark(_probe(got))
        self.result.mutating_commands += sum(
            1
            for (_, c), o in zip(owner, outcomes, strict=True)
            if c.mutating and o is not None and not o.skipped
        )
        deferred: list[StepDef] = []
        for sd in steps:
            mine = [(c, outcomes[i]) for i, (s, c) in enumerate(owner) if s is sd]
            # an always-step none of whose commands ran (the batch stopped at a failed or hung command
            # before it) runs afterwards on its own: unmount after a failed install
            if sd.always and not cleanup and self.failure is not None and all(
                o is None or not o.ran for _, o in mine
            ):
                deferred.append(sd)
                continue
            self._record_exec_step(sd, begun[sd.name], mine, error, cleanup)
            if error is not None and any(o is None for _, o in mine):
                error = None  # the transport error belongs to the first step that did not finish
        for sd in deferred:
            await self._run_always(sd, plans[sd.name], begun[sd.name])

    async def _stdin(self, names: list[str]) -> bytes | None:
        """The named inputs, concatenated. A secret one is made on first use (PFX decryption and re-wrap
        are CPU work: done off the event loop, which serves every other device meanwhile)."""
        if not names:
            return None
        return b"".join(await asyncio.to_thread(lambda: [self.w.materials.stdin(n) for n in names])) or None

    def _record_exec_step(
        self,
        sd: StepDef,
        begun: tuple[str, float],
        mine: list[tuple[Command, StepOutcome | None]],
        error: tuple[str, str] | None,
        cleanup: bool,
    ) -> None:
        tail = "\n".join(
            (o.stdout + o.stderr).decode("utf-8", "replace") for _, o in mine if o is not None
        ).strip()
        awaited: list[FailureReason] = []
        for c, o in mine:
            if o is None or not o.ran:
                if error is not None:
                    f = self._fail(sd.name, begun, error[0], error[1], tail=tail or None)
                    if self.failure is None:
                        self.failure = f
                else:
                    why = "not run: an earlier step failed"
                    self._end(sd.name, begun, StepStatus.SKIPPED, noop_reason=why)
                return
            if sd.awaiting_trust_on and o.exit_status != 0 and not o.skipped:
                reason = self._explain(sd, c, o)
                if reason.error_type in sd.awaiting_trust_on:
                    awaited.append(reason)
                    continue
                # any other trouble fails the device, whatever ok_codes let the exec run past
                f = self._fail(
                    sd.name, begun, reason.error_type,
                    reason.message + (f" — {reason.hint}" if reason.hint else ""),
                    exit_code=o.exit_status, tail=tail or None,
                )
                if self.failure is None and not cleanup:
                    self.failure = f
                return
            if o.exit_status not in c.ok_codes:
                reason = self._explain(sd, c, o)
                f = self._fail(
                    sd.name, begun, reason.error_type,
                    reason.message + (f" — {reason.hint}" if reason.hint else ""),
                    exit_code=o.exit_status, tail=tail or None,
                )
                if self.failure is None and not cleanup:
                    self.failure = f
                return
        if awaited:
            self._await_trust(sd, begun, awaited, tail or None)
            return
        if all(o is not None and o.skipped for _, o in mine):
            probes = "; ".join(" ".join(c.unless or ()) for c, _ in mine)
            self._end(sd.name, begun, StepStatus.NOOP, noop_reason=f"already so: {probes} succeeded")
            return
        mutated = any(c.mutating and o is not None and not o.skipped for c, o in mine)
        self._end(sd.name, begun, StepStatus.CHANGED if mutated else StepStatus.OK, exit_code=0,
                  tail=tail or None)

    def _await_trust(
        self, sd: StepDef, begun: tuple[str, float], why: list[FailureReason], tail: str | None
    ) -> None:
        """A trust change macOS refused (or a profile not yet delivered): recorded on the step as a failure
        with its typed reason, but the device goes on and ends awaiting trust, not failed."""
        first = why[0]
        message = "; ".join(dict.fromkeys(w.message for w in why))
        message += f" — {first.hint}" if first.hint else ""
        self._fail(sd.name, begun, first.error_type, message, tail=tail)
        if self.awaiting is None:
            self.awaiting = (sd.name, first)

    def _explain(self, sd: StepDef, c: Command, o: StepOutcome) -> FailureReason:
        out, err = o.stdout.decode("utf-8", "replace"), o.stderr.decode("utf-8", "replace")
        if sd.explain is not None:
            reason = sd.explain(c.argv, o.exit_status, out, err)
            if reason is not None:
                return reason
        last = (err.strip() or out.strip()).splitlines()[-1:] or [""]
        return FailureReason(
            "CommandFailed", f"`{' '.join(c.argv)}` exited {o.exit_status}: {last[0][:300]}"
        )

    async def _push(self, sd: StepDef, plan: Plan) -> None:
        begun = self._begin(sd.name, plan)
        remote_dir = self.s.private_dir or getattr(self.w.params, "private_dir", None)
        if not remote_dir:
            self.failure = self._fail(sd.name, begun, "PlanError", "no private directory to upload into")
            return
        try:
            items = await asyncio.to_thread(  # the PFX is decrypted and re-wrapped here: not on the loop
                lambda: [UploadItem(self.w.materials.source(u.source), u.name, u.mode) for u in plan.uploads]
            )
        except (KeyError, ValueError) as e:
            self.failure = self._fail(sd.name, begun, "MissingInput", str(e))
            return
        await self.rec.flush()
        self.changed.add(sd.name)  # from here on the private directory may exist: cleanup must run
        try:
            results = await upload_many_with_retry(self._reconnect, items, remote_dir)
        except TransportError as e:
            self.failure = self._fail(sd.name, begun, type(e).__name__, str(e))
            return
        sent = [r for r in results if not r.skipped]
        detail = ", ".join(f"{r.path} ({r.bytes} B{', already there' if r.skipped else ''})" for r in results)
        self._end(sd.name, begun, StepStatus.CHANGED if sent else StepStatus.NOOP,
                  noop_reason=None if sent else "every file was already there", tail=detail)

    async def _verify(self, sd: StepDef, plan: Plan, facts: Any) -> None:
        if self.awaiting is not None:  # without its CA trust the client cannot connect: converge verifies
            begun = self._begin(sd.name, plan)
            self._skip(sd.name, f"awaiting CA trust ({self.awaiting[1].error_type}): converge verifies later",
                       begun)
            return
        if any(is_poll(c.argv) for c in plan.commands):
            await self._verify_poll(sd, plan, facts)
            return
        assert self.conn is not None
        begun = self._begin(sd.name, plan)
        deadline = time.monotonic() + self.s.verify_timeout
        interval = self.s.verify_interval
        lines = [_line(c) for c in plan.commands]
        while True:
            try:
                res = await self.conn.run_script(
                    lines, sudo=self.w.sudo if plan.commands[0].sudo else None, stop_on_error=False,
                    timeout=self.s.timeouts.command * len(lines),
                )
            except TransportError as e:
                self.failure = self._fail(sd.name, begun, type(e).__name__, str(e))
                return
            outputs = [_probe(o) for o in res.steps]
            verdict = self.s.workflow.judge_verify(facts, self.w.params, outputs)
            if verdict.done:
                self.result.connected = True
                self._end(sd.name, begun, StepStatus.OK, tail=verdict.detail or None)
                return
            if verdict.failure is not None:
                self.result.connected = False
                f = verdict.failure
                tail = "\n".join(o.stdout for o in outputs)[-TAIL_CHARS:]
                self.failure = self._fail(
                    sd.name, begun, f.error_type, f.message + (f" — {f.hint}" if f.hint else ""), tail=tail
                )
                return
            if time.monotonic() + interval > deadline or self.stop.is_set():
                self.result.connected = False
                tail = "\n".join(o.stdout for o in outputs)[-TAIL_CHARS:]
                self.failure = self._fail(
                    sd.name, begun, "VerifyTimeout",
                    f"the client did not report a Switch connection within {self.s.verify_timeout:.0f} s "
                    f"({verdict.detail or 'no new log lines'}) — see the log tail in this step's record",
                    tail=tail,
                )
                return
            await asyncio.sleep(interval)
            interval = min(interval * 2, 2.0)

    async def _verify_poll(self, sd: StepDef, plan: Plan, facts: Any) -> None:
        """ONE exec: the plan's probes with the poll bound to this run (window, pause, rules, log mark); the
        Mac loops until evidence or the window's end. A poll that ends pending is `unverified`."""
        assert self.conn is not None
        cmds = tuple(self._bind(c) for c in plan.commands)
        begun = self._begin(sd.name, Plan(commands=cmds))
        lines = [_line(c) for c in cmds]
        # the Mac bounds the poll; the exec's own limit only catches a Mac that stops answering
        limit = 2 * self.s.verify_timeout + self.s.timeouts.command * len(lines)
        try:
            res = await self.conn.run_script(
                lines, sudo=self.w.sudo if cmds[0].sudo else None, stop_on_error=False, timeout=limit,
            )
        except TransportError as e:
            self.failure = self._fail(sd.name, begun, type(e).__name__, str(e))
            return
        outputs = [_probe(o) for o in res.steps]
        verdict = self.s.workflow.judge_verify(facts, self.w.params, outputs)
        tail = "\n".join(o.stdout for o in outputs)[-TAIL_CHARS:]
        if verdict.done:
            self.result.connected = True
            self._end(sd.name, begun, StepStatus.OK, tail=verdict.detail or None)
            return
        if verdict.failure is not None:
            self.result.connected = False
            f = verdict.failure
            self.failure = self._fail(
                sd.name, begun, f.error_type, f.message + (f" — {f.hint}" if f.hint else ""), tail=tail
            )
            return
        why = self._redact(f"{verdict.detail} — `orchestrate status --refresh` or `converge` checks again")
        self.unverified = (self.s.step_prefix + sd.name, why)
        self._end(sd.name, begun, StepStatus.UNVERIFIED, error_type="Unverified", message=why, tail=tail)

    def _bind(self, c: Command) -> Command:
        if not is_poll(c.argv):
            return c
        spec = PollSpec.from_argv(c.argv).bound(
            window=self.s.verify_timeout, pause=self.s.verify_interval, rules=self.s.verify_rules,
            mark=self.log_mark,
        )
        return Command(spec.argv(), sudo=c.sudo, mutating=c.mutating, ok_codes=c.ok_codes)


_MARKER = re.compile(rb"\n(MACFLEET-STEP-[0-9a-f]+) 0 ")


def _finished_before(e: CommandTimeout, lines: list[ScriptLine]) -> list[StepOutcome]:
    """The steps of a script cut short by its time limit, from the output that had arrived (the marker
    lines of `workers.ssh.exec.build_script`); all unfinished when none can be told apart."""
    found = _MARKER.search(e.stdout)
    if found is None:
        return [StepOutcome(list(ln.argv), None, b"", b"") for ln in lines]
    return split_steps(lines, found.group(1).decode("ascii"), e.stdout, e.stderr)


def _segments(flags: list[bool]) -> list[list[int]]:
    """Indexes grouped into runs of equal flags (one exec per run of sudo / non-sudo commands)."""
    out: list[list[int]] = []
    for i, flag in enumerate(flags):
        if out and flags[out[-1][0]] == flag:
            out[-1].append(i)
        else:
            out.append([i])
    return out
