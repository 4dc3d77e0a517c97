"""Running every read-only probe the workflows use on one inventory Mac, as the runner connects to it (the
device's stored SSH auth, pinned host keys and sudo mode), for `orchestrate facts` and its `--capture`.

At most two execs, both as root through sudo like the runner's facts exec: the fact probes (and the
probes that tell the redaction the Mac's serial number, UUID and names), then the read-only commands the
workflows' step plans name for this Mac (verify's probes). Nothing is recorded and nothing is changed."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from orchestrator.config import Settings
from orchestrator.secrets import SecretBox
from orchestrator.state.models import Device, DeviceJob, Run, new_id
from tasks import probes
from tasks.model import Command, ProbeOutput
from workers.runner.batch import probe
from workers.runner.device import DeviceWork
from workers.runner.inputs import InputError, device_work, load_run_inputs
from workers.runner.job import timeouts_of
from workers.ssh import Connection, ScriptLine, SudoMode, TransportError, connect

# read-only probes that tell the redaction what identifies the Mac; never written as fixtures.
# ioreg's IOPlatformExpertDevice node holds "IOPlatformSerialNumber" and "IOPlatformUUID" (public tools
# read both this way, e.g. `ioreg -rd1 -c IOPlatformExpertDevice`); scutil --get prints one name (HostName
# is unset on most Macs: "HostName: not set", exit 1).
IDENTITY_PROBES: tuple[tuple[str, Command], ...] = (
    ("identity:ioreg", Command(("ioreg", "-rd1", "-c", "IOPlatformExpertDevice"), mutating=False)),
    ("identity:host_name", Command(("scutil", "--get", "HostName"), mutating=False)),
    ("identity:local_host_name", Command(("scutil", "--get", "LocalHostName"), mutating=False)),
    ("identity:computer_name", Command(("scutil", "--get", "ComputerName"), mutating=False)),
)


class CaptureError(Exception):
    """The Mac could not be reached or probed (the message says why and what to do)."""


class NoSuchDevice(CaptureError):
    """The name given is no device of the inventory: bad input."""


@dataclass
class Capture:
    device: str
    outputs: dict[str, ProbeOutput]  # probe name -> raw output (the fixtures' probes)
    identity: dict[str, ProbeOutput]  # the redaction's probes
    users: list[str]  # the SSH login (its name identifies a person)
    unparsed: list[str] = field(default_factory=list)  # workflows whose facts did not parse (plans unknown)
    round_trips: int = 0


async def _run(
    conn: Connection, named: tuple[tuple[str, Command], ...], sudo: SudoMode, limit: float
) -> dict[str, ProbeOutput]:
    if not named:
        return {}
    res = await conn.run_script(
        [ScriptLine(list(c.argv)) for _, c in named],
        sudo=sudo,
        stop_on_error=False,
        timeout=limit * len(named),
    )
    return {
        name: probe(o)
        for (name, _), o in zip(named, res.steps, strict=True)
    }


def _device(engine: Engine, name: str) -> Device:
    with Session(engine) as s:
        device = s.exec(select(Device).where(Device.name == name)).first()
    if device is None:
        raise NoSuchDevice(f"no device named {name!r}: see `orchestrate inventory list`")
    return device


async def capture(engine: Engine, settings: Settings, name: str, *, full: bool = True) -> Capture:
    """Probe the inventory device `name`: the fact probes, and with `full` (a capture) also the redaction's
    identity probes and the plans' read-only commands (a second exec). Raises CaptureError."""
    device = _device(engine, name)
    run = Run(id="capture-" + new_id()[:12], kind="logs", params_json=json.dumps({"daemon": True}))

    def build() -> DeviceWork:
        with Session(engine) as s:
            inputs = load_run_inputs(s, run)
            job = DeviceJob(id="capture", run_id=run.id, device_id=device.id)
            return device_work(s, settings, inputs, job, device, lambda: SecretBox.from_settings(settings))

    try:
        work = await asyncio.to_thread(build)
    except (InputError, ValueError, KeyError) as e:
        raise CaptureError(f"{name}: {e}") from None
    timeouts = timeouts_of(settings)
    try:
        conn = await connect(work.target, work.host_keys, work.auth, timeouts)
    except TransportError as e:
        work.materials.release()
        raise CaptureError(f"{name}: {type(e).__name__}: {e}") from None
    try:
        facts = probes.fact_probes()
        argvs = {c.argv for _, c in facts}
        ident = tuple((n, c) for n, c in IDENTITY_PROBES if c.argv not in argvs) if full else ()
        first = await _run(conn, (*facts, *ident), work.sudo, timeouts.command)
        outputs = {n: first[n] for n, _ in facts}
        identity = {n: first[n] for n, _ in ident}
        for n, c in IDENTITY_PROBES:  # an identity probe that is also a fact probe was run as that
            if n not in identity and c.argv in argvs:
                identity[n] = next(first[fn] for fn, fc in facts if fc.argv == c.argv)
        unparsed: list[str] = []
        if full:
            planned, unparsed = probes.plan_probes(outputs)
            outputs.update(await _run(conn, planned, work.sudo, timeouts.command))
    except TransportError as e:
        raise CaptureError(f"{name}: {type(e).__name__}: {e}") from None
    finally:
        await conn.close()
        work.materials.release()
    redactor = work.materials.redactor  # SSH/sudo passwords, should a tool ever echo one

    def masked(out: ProbeOutput) -> ProbeOutput:
        return ProbeOutput(
            out.argv, out.exit_status, redactor.redact(out.stdout), redactor.redact(out.stderr)
        )

    return Capture(name, {k: masked(v) for k, v in outputs.items()},
                   {k: masked(v) for k, v in identity.items()},
                   [work.target.username], unparsed, conn.round_trips)  # fmt: skip
