"""EXEC steps in batches: consecutive EXEC steps share one exec per sudo segment — a script with a marker
after every command — so a full install costs a handful of round trips, yet every step's outcome is
recorded on its own. An exec cut short by its time limit still credits each step with what finished before
the hang. Steps marked `always` (unmount, cleanup) run after a failure or an interruption when their
partner step changed something."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping

from tasks.install.verify import LOG_MARK, parse_log_mark
from tasks.model import Command, Plan, ProbeOutput, StepDef
from workers.runner.context import StepContext
from workers.runner.records import Begun
from workers.ssh import CommandTimeout, ScriptLine, StepOutcome, TransportError
from workers.ssh.exec import split_steps

_MARKER = re.compile(rb"\n(MACFLEET-STEP-[0-9a-f]+) 0 ")


def probe(o: StepOutcome) -> ProbeOutput:
    return ProbeOutput(
        tuple(o.argv), o.exit_status, o.stdout.decode("utf-8", "replace"), o.stderr.decode("utf-8", "replace")
    )


def line(c: Command) -> ScriptLine:
    return ScriptLine(
        list(c.argv),
        keep_stdin=c.stdin is not None,
        unless=list(c.unless) if c.unless is not None else None,
        ok_codes=c.ok_codes,
    )


class ExecBatch:
    """Runs EXEC steps for one device job; `log_mark` is the client log's size right before this run's
    (re)start, read by the LOG_MARK command (verify reads the log from there)."""

    def __init__(self, job: StepContext) -> None:
        self.job = job
        self.log_mark: int | None = None

    async def run_always(self, sd: StepDef, plan: Plan, begun: Begun | None = None) -> None:
        """An always-step after a failure or an interruption. `begun`: its record, when already started."""
        rs = self.job.records
        if plan.noop is not None or plan.refusal is not None or not plan.commands:
            rs.skip(sd.name, plan.noop.reason if plan.noop else "nothing to undo", begun)
            return
        if sd.requires is not None and sd.requires not in rs.changed:
            rs.skip(sd.name, f"not needed: {sd.requires} did not run", begun)
            return
        if self.job.link.is_down:  # e.g. the link dropped during the push: reconnect
            begun = begun or rs.begin(sd.name, plan)
            try:
                await self.job.link.reconnect()
            except TransportError as e:
                rs.fail(sd.name, begun, type(e).__name__, f"could not reconnect to undo: {e}")
                return
        await self.exec_steps([sd], {sd.name: plan}, stop_on_error=False, cleanup=True,
                              begun={sd.name: begun} if begun else None)

    async def flush(self, batch: list[StepDef]) -> None:
        if not batch:
            return
        plans, rs = self.job.result.plans, self.job.records
        if rs.failure is not None or self.job.stop.is_set():
            for sd in batch:
                if sd.always:
                    await self.run_always(sd, plans[sd.name])
                else:
                    rs.skip(sd.name, "not run: an earlier step failed" if rs.failure else "interrupted")
            return
        await self.exec_steps(batch, plans, stop_on_error=True, cleanup=False)

    async def exec_steps(
        self,
        steps: list[StepDef],
        plans: Mapping[str, Plan],
        *,
        stop_on_error: bool,
        cleanup: bool,
        begun: Mapping[str, Begun] | None = None,
    ) -> None:
        """Run the commands of `steps` in one exec per sudo segment and record each step's outcome.

        An always-step of the batch that did not get to run because an earlier one failed (unmount after a
        failed install) runs afterwards, on its own, as after any failure."""
        conn = self.job.link.conn
        assert conn is not None
        rs = self.job.records
        begun = {sd.name: (begun or {}).get(sd.name) or rs.begin(sd.name, plans[sd.name]) for sd in steps}
        await rs.flush()  # the steps are marked running before anything changes on the Mac
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
            limit = self.job.settings.timeouts.command * len(cmds)
            try:
                res = await conn.run_script(
                    [line(c) for c in cmds],
                    sudo=self.job.work.sudo if cmds[0].sudo else None,
                    input=stdin,
                    timeout=limit,
                    stop_on_error=stop_on_error,
                )
            except CommandTimeout as e:
                done = _finished_before(e, [line(c) for c in cmds])
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
                self.job.result.executed.append((sd.name, c.argv))
                if c.argv == LOG_MARK.argv:  # the log's size before the (re)start: verify reads from there
                    with contextlib.suppress(ValueError):
                        self.log_mark = parse_log_mark(probe(got))
        self.job.result.mutating_commands += sum(
            1
            for (_, c), o in zip(owner, outcomes, strict=True)
            if c.mutating and o is not None and not o.skipped
        )
        deferred: list[StepDef] = []
        for sd in steps:
            mine = [(c, outcomes[i]) for i, (s, c) in enumerate(owner) if s is sd]
            # an always-step none of whose commands ran (the batch stopped at a failed or hung command
            # before it) runs afterwards on its own: unmount after a failed install
            if sd.always and not cleanup and rs.failure is not None and all(
                o is None or not o.ran for _, o in mine
            ):
                deferred.append(sd)
                continue
            rs.exec_step(sd, begun[sd.name], mine, error, cleanup)
            if error is not None and any(o is None for _, o in mine):
                error = None  # the transport error belongs to the first step that did not finish
        for sd in deferred:
            await self.run_always(sd, plans[sd.name], begun[sd.name])

    async def _stdin(self, names: list[str]) -> bytes | None:
        """The named inputs, concatenated. A secret one is made on first use (PFX decryption and re-wrap
        are CPU work: done off the event loop, which serves every other device meanwhile)."""
        if not names:
            return None
        materials = self.job.work.materials
        return b"".join(await asyncio.to_thread(lambda: [materials.stdin(n) for n in names])) or None


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
