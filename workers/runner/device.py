"""One device through one workflow: connect, gather facts, plan every step, execute, record each step.

The plan is made once from the facts of ONE round trip (planners are pure and idempotent). Consecutive EXEC
steps share one exec (`batch`); PUSH steps upload over SFTP (`push`); the VERIFY step polls read-only
probes until the workflow's judge decides (`verify`). Steps marked `always` (unmount, cleanup) still run
after a failure or an interruption when their partner step changed something.

Nothing here knows the database: records go through the `Recorder` (`records`), events through `emit`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from orchestrator.state.models import JobStatus, StepStatus, utcnow
from tasks.model import FailureReason, Phase, Plan, StepDef
from workers.events import JobFinished, JobStarted, RunEvent
from workers.runner.batch import ExecBatch, probe
from workers.runner.context import StepContext
from workers.runner.link import Link
from workers.runner.materials import Materials
from workers.runner.push import push
from workers.runner.recorder import Recorder
from workers.runner.records import Failed, StepRecords, worded
from workers.runner.verify import Verifier
from workers.runner.work import DeviceResult, DeviceWork, RunSettings
from workers.ssh import ScriptLine, TransportError

__all__ = [
    "CONNECT_STEP",
    "FACTS_STEP",
    "DeviceResult",
    "DeviceRunner",
    "DeviceWork",
    "Materials",
    "RunSettings",
]

CONNECT_STEP = "connect"
FACTS_STEP = "facts"


class _Interrupted(Exception):
    pass


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
        self.result = DeviceResult(name=work.name, status=JobStatus.RUNNING.value)
        self.records = StepRecords(
            recorder, self.emit, work.materials.redactor, run_id=settings.run_id, job_id=work.job_id,
            device=work.name, attempt=work.attempt, prefix=settings.step_prefix,
        )
        self.link = Link(work, settings.timeouts)
        self.job = StepContext(work, settings, self.records, self.link, self.result, self.stop)
        self.batch, self.verifier = ExecBatch(self.job), Verifier(self.job)
        self._started = time.monotonic()

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
        except Failed as f:
            self.records.failure = f
        except _Interrupted:
            self.result.status = JobStatus.INTERRUPTED.value
        except asyncio.CancelledError:
            self.result.status = JobStatus.INTERRUPTED.value
            self._finish()
            await self.link.close()
            raise
        finally:
            if self.link.conn is not None:
                self.result.round_trips = self.link.conn.round_trips
        self._finish()
        await self.link.close()
        return self.result

    def _finish(self) -> None:
        r, rs = self.result, self.records
        if rs.failure is not None:
            r.status = JobStatus.FAILED.value
            r.step, r.error_type, r.message = rs.failure.step, rs.failure.error_type, rs.failure.message
        elif r.status == JobStatus.RUNNING.value and rs.unverified is not None:
            r.status = JobStatus.UNVERIFIED.value
            r.step, r.error_type, r.message = rs.unverified[0], "Unverified", rs.unverified[1]
        elif rs.awaiting is not None and r.status == JobStatus.RUNNING.value:
            step, why = rs.awaiting
            r.status = JobStatus.AWAITING_TRUST.value
            r.step, r.error_type, r.message = self.s.step_prefix + step, why.error_type, worded(why)
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

    async def _connect(self) -> None:
        begun = self.records.begin(CONNECT_STEP)
        try:
            conn = await self.link.open()
        except TransportError as e:
            raise self.records.fail(CONNECT_STEP, begun, type(e).__name__, str(e)) from None
        if conn.host_key_is_new and self.w.on_new_host_key is not None:
            self.w.on_new_host_key(conn.host_key, conn.host_key_fingerprint)
        self.records.end(CONNECT_STEP, begun, StepStatus.OK)

    async def _facts(self) -> Any:
        assert self.link.conn is not None
        wf = self.s.workflow
        begun = self.records.begin(FACTS_STEP)
        named = wf.fact_commands(self.w.params)
        try:
            res = await self.link.conn.run_script(
                [ScriptLine(list(c.argv)) for _, c in named], sudo=self.w.sudo, stop_on_error=False,
                timeout=self.s.timeouts.command * len(named),  # as every exec: the command limit per command
            )
        except TransportError as e:
            raise self.records.fail(FACTS_STEP, begun, type(e).__name__, str(e)) from None
        outputs = {name: probe(o) for (name, _), o in zip(named, res.steps, strict=True)}
        try:
            facts = wf.parse_facts(self.w.params, outputs, self.s.verify_rules)
        except ValueError as e:
            msg = f"could not read the Mac's facts: {e}"
            raise self.records.fail(FACTS_STEP, begun, "UnexpectedFacts", msg) from None
        self.result.facts = facts
        facts_doc = facts.as_json()
        # only what this workflow's facts say (the workflow names its columns): the rest is left alone
        update = wf.fact_columns(facts)
        self.rec.device(
            self.w.device_id,
            facts_json=json.dumps(facts_doc, sort_keys=True, default=str),
            facts_at=utcnow(),
            **update,
        )
        self.records.end(FACTS_STEP, begun, StepStatus.OK)
        return facts

    async def _execute(self, facts: Any, plans: dict[str, Plan]) -> None:
        rs, batch = self.records, self.batch
        pending: list[StepDef] = []
        for sd in self.s.workflow.steps:
            plan = plans[sd.name]
            if rs.failure is not None or self.stop.is_set():
                if sd.phase is Phase.EXEC and sd.always:
                    await batch.flush(pending)
                    pending = []
                    await batch.run_always(sd, plan)
                else:
                    rs.skip(sd.name, "not run: an earlier step failed" if rs.failure else "interrupted")
                continue
            if plan.refusal is not None:
                await batch.flush(pending)
                pending = []
                if rs.failure is None:
                    begun = rs.begin(sd.name, plan)
                    r = plan.refusal
                    msg = f"{r.message} — {r.hint}" if r.hint else r.message
                    if r.error_type in sd.awaiting_trust_on:
                        rs.await_trust(sd, begun, [FailureReason(r.error_type, r.message, r.hint)], None)
                    else:
                        rs.failure = rs.fail(sd.name, begun, r.error_type, msg)
                continue
            if plan.noop is not None:
                begun = rs.begin(sd.name, plan)
                rs.end(sd.name, begun, StepStatus.NOOP, noop_reason=plan.noop.reason)
                continue
            if sd.phase is Phase.EXEC:
                pending.append(sd)
                continue
            await batch.flush(pending)
            pending = []
            if rs.failure is not None or self.stop.is_set():
                rs.skip(sd.name, "not run: an earlier step failed" if rs.failure else "interrupted")
                continue
            if sd.phase is Phase.PUSH:
                await push(self.job, sd, plan)
            else:
                await self.verifier.verify(sd, plan, facts, batch.log_mark)
        await batch.flush(pending)
        if rs.failure is not None:
            raise rs.failure
        if self.stop.is_set() and self.result.status == JobStatus.RUNNING.value:
            raise _Interrupted()
