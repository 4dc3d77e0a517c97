"""`orchestrate inventory probe`: read who each Mac is (macOS version, architecture, its names) in ONE exec
per Mac, without root, many Macs at once. Nothing on the Macs changes; the caller stores the facts.

Progress goes out as the runner's events (JobStarted / StepFinished / JobFinished, steps "connect" and
"facts"), so the live run display shows it as it shows a deploy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session

from orchestrator.config import Settings
from orchestrator.secrets import SecretBox
from orchestrator.state.models import Device
from tasks.facts import FactsError, HostFacts, host_fact_commands, parse_host_facts
from workers.events import JobFinished, JobStarted, RunEvent, StepFinished
from workers.runner.batch import probe
from workers.runner.inputs import InputError, ssh_access
from workers.runner.job import pin_host_key, timeouts_of
from workers.ssh import Connection, ScriptLine, TransportError, connect

PROBE_RUN = "probe"
STEPS = ("connect", "facts")


@dataclass(frozen=True)
class ProbeResult:
    device_id: str
    name: str
    facts: HostFacts | None
    error_type: str | None = None
    message: str | None = None
    execs: int = 0  # exec round trips spent on this Mac (one when it answered)


async def probe_devices(
    engine: Engine,
    settings: Settings,
    devices: Sequence[Device],
    *,
    concurrency: int | None = None,
    on_event: Callable[[RunEvent], None] | None = None,
) -> list[ProbeResult]:
    """Probe every device (at most `concurrency` at once, default [ssh] concurrency); one result each, in
    the order given. An unreachable Mac gives a result with its error; the others are not affected."""
    sem = asyncio.Semaphore(concurrency or settings.ssh.concurrency)
    pin = pin_host_key(engine)
    boxes: list[SecretBox] = []

    def box() -> SecretBox:  # made once, only when a device logs in with a stored password
        if not boxes:
            boxes.append(SecretBox.from_settings(settings))
        return boxes[0]

    def emit(ev: RunEvent) -> None:
        if on_event is not None:
            on_event(ev)

    async def one(device: Device) -> ProbeResult:
        async with sem:
            emit(JobStarted(PROBE_RUN, device.name, STEPS))
            result = await _probe_one(engine, settings, device, box, pin, emit)
            status = "succeeded" if result.facts is not None else "failed"
            step = None if result.facts is not None else ("facts" if result.execs else "connect")
            emit(JobFinished(PROBE_RUN, device.name, status, step, result.error_type, result.message))
            return result

    return list(await asyncio.gather(*(one(d) for d in devices)))


async def _probe_one(
    engine: Engine,
    settings: Settings,
    device: Device,
    box: Callable[[], SecretBox],
    pin: Callable[[Device, str, str], None],
    emit: Callable[[RunEvent], None],
) -> ProbeResult:
    def step(name: str, status: str, started: float, error: tuple[str, str] | None = None) -> None:
        ms = int((time.monotonic() - started) * 1000)
        kind, msg = error if error is not None else (None, None)
        emit(StepFinished(PROBE_RUN, device.name, name, status, None, kind, msg, ms))

    def fail(name: str, started: float, kind: str, msg: str, execs: int = 0) -> ProbeResult:
        step(name, "failed", started, (kind, msg))
        return ProbeResult(device.id, device.name, None, kind, msg, execs)

    started = time.monotonic()
    try:
        with Session(engine) as s:
            target, auth, host_keys = ssh_access(s, settings, device, box)
        conn: Connection = await connect(target, host_keys, auth, timeouts_of(settings))
    except InputError as e:
        return fail("connect", started, e.error_type, str(e))
    except TransportError as e:
        return fail("connect", started, type(e).__name__, str(e))
    except ValueError as e:  # an unreadable known_hosts file, a key file that does not load
        return fail("connect", started, "BadInput", str(e))
    try:
        if conn.host_key_is_new:
            pin(device, conn.host_key, conn.host_key_fingerprint)
        step("connect", "ok", started)
        started = time.monotonic()
        named = host_fact_commands()
        try:
            res = await conn.run_script(
                [ScriptLine(list(c.argv)) for _, c in named], stop_on_error=False,
                timeout=timeouts_of(settings).command,
            )  # fmt: skip
        except TransportError as e:
            return fail("facts", started, type(e).__name__, str(e), conn.round_trips)
        outputs = {name: probe(o) for (name, _), o in zip(named, res.steps, strict=True)}
        try:
            facts = parse_host_facts(outputs)
        except FactsError as e:
            return fail("facts", started, "UnexpectedFacts", f"could not read the Mac's facts: {e}", 1)
        step("facts", "ok", started)
        return ProbeResult(device.id, device.name, facts, execs=conn.round_trips)
    finally:
        await conn.close()
