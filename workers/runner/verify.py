"""The VERIFY step: read-only probes judged by the workflow. With the install's poll, ONE exec — the Mac
loops until evidence or the window's end, and a poll that ends pending is `unverified`; other workflows'
probes are run again from here until the judge decides or the time is up. A device that awaits CA trust
skips verify: without the trust the client cannot connect, and converge verifies later."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from orchestrator.state.models import StepStatus
from tasks.install.verify import PollSpec, is_poll
from tasks.model import Command, Plan, StepDef, VerifyVerdict
from workers.runner.batch import line, probe
from workers.runner.context import StepContext
from workers.runner.records import TAIL_CHARS, Begun, worded
from workers.ssh import TransportError


class Verifier:
    def __init__(self, job: StepContext) -> None:
        self.job = job
        self.w, self.s = job.work, job.settings

    async def verify(self, sd: StepDef, plan: Plan, facts: Any, log_mark: int | None) -> None:
        """`log_mark`: the client log's size right before this run's (re)start, where the poll reads from."""
        rs = self.job.records
        if rs.awaiting is not None:  # without its CA trust the client cannot connect: converge verifies
            begun = rs.begin(sd.name, plan)
            why = f"awaiting CA trust ({rs.awaiting[1].error_type}): converge verifies later"
            rs.skip(sd.name, why, begun)
            return
        if any(is_poll(c.argv) for c in plan.commands):
            await self._verify_poll(sd, plan, facts, log_mark)
            return
        begun = rs.begin(sd.name, plan)
        deadline = time.monotonic() + self.s.verify_timeout
        interval = self.s.verify_interval
        limit = self.s.timeouts.command * len(plan.commands)
        while True:
            pending = await self._judged(sd, begun, facts, plan.commands, limit)
            if pending is None:
                return
            verdict, tail = pending
            if time.monotonic() + interval > deadline or self.job.stop.is_set():
                self.job.result.connected = False
                rs.failure = rs.fail(
                    sd.name, begun, "VerifyTimeout",
                    f"the client did not report a Switch connection within {self.s.verify_timeout:.0f} s "
                    f"({verdict.detail or 'no new log lines'}) — see the log tail in this step's record",
                    tail=tail,
                )
                return
            await asyncio.sleep(interval)
            interval = min(interval * 2, 2.0)

    async def _verify_poll(self, sd: StepDef, plan: Plan, facts: Any, log_mark: int | None) -> None:
        """ONE exec: the plan's probes with the poll bound to this run (window, pause, rules, log mark); the
        Mac loops until evidence or the window's end. A poll that ends pending is `unverified`."""
        rs = self.job.records
        cmds = tuple(self._bind(c, log_mark) for c in plan.commands)
        begun = rs.begin(sd.name, Plan(commands=cmds))
        # the Mac bounds the poll; the exec's own limit only catches a Mac that stops answering
        limit = 2 * self.s.verify_timeout + self.s.timeouts.command * len(cmds)
        pending = await self._judged(sd, begun, facts, cmds, limit)
        if pending is None:
            return
        verdict, tail = pending
        why = rs.redact(f"{verdict.detail} — `orchestrate status --refresh` or `converge` checks again")
        rs.unverified = (self.s.step_prefix + sd.name, why)
        rs.end(sd.name, begun, StepStatus.UNVERIFIED, error_type="Unverified", message=why, tail=tail)

    async def _judged(
        self, sd: StepDef, begun: Begun, facts: Any, cmds: tuple[Command, ...], limit: float
    ) -> tuple[VerifyVerdict, str] | None:
        """One exec of the probes, judged. None when that settled the step (recorded: the client connected,
        it failed, or the link failed); otherwise the verdict still pending and the output's tail."""
        conn = self.job.link.conn
        assert conn is not None
        try:
            res = await conn.run_script(
                [line(c) for c in cmds], sudo=self.w.sudo if cmds[0].sudo else None, stop_on_error=False,
                timeout=limit,
            )
        except TransportError as e:
            self.job.records.failure = self.job.records.fail(sd.name, begun, type(e).__name__, str(e))
            return None
        outputs = [probe(o) for o in res.steps]
        verdict = self.s.workflow.judge_verify(facts, self.w.params, outputs)
        tail = "\n".join(o.stdout for o in outputs)[-TAIL_CHARS:]
        return None if self._decided(sd, begun, verdict, tail) else (verdict, tail)

    def _decided(self, sd: StepDef, begun: Begun, verdict: VerifyVerdict, tail: str) -> bool:
        """Records a verdict that decides — the client connected, or it failed; False: no evidence yet."""
        if verdict.done:
            self.job.result.connected = True
            self.job.records.end(sd.name, begun, StepStatus.OK, tail=verdict.detail or None)
            return True
        if verdict.failure is not None:
            self.job.result.connected = False
            self.job.records.failure = self.job.records.fail(
                sd.name, begun, verdict.failure.error_type, worded(verdict.failure), tail=tail
            )
            return True
        return False

    def _bind(self, c: Command, log_mark: int | None) -> Command:
        if not is_poll(c.argv):
            return c
        spec = PollSpec.from_argv(c.argv).bound(
            window=self.s.verify_timeout, pause=self.s.verify_interval, rules=self.s.verify_rules,
            mark=log_mark,
        )
        return Command(spec.argv(), sudo=c.sudo, mutating=c.mutating, ok_codes=c.ok_codes)
