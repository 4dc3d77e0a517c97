"""The CLI's read-only looks at Macs that record no run: each runs one `workers` coroutine to its end on
the configured database and settings (deploy --dry-run and logs: facts and plans; inventory probe: names;
facts: every probe's output).

With `dispatch` (runs) the only CLI modules that import `workers` (an import-linter contract in
pyproject.toml holds the others to it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from orchestrator.cli import context
from orchestrator.state.models import Device
from workers.capture import Capture, CaptureError, NoSuchDevice, capture
from workers.local import DevicePlan, dry_run
from workers.probe import ProbeResult, probe_devices

__all__ = [
    "Capture", "CaptureError", "DevicePlan", "NoSuchDevice", "ProbeResult",
    "capture_device", "plans", "probe",
]


def plans(
    params: dict[str, Any], device_ids: list[str], *, kind: str = "install", concurrency: int | None = None
) -> list[DevicePlan]:
    """Each device's facts and the plan of every step of a `kind` run with params; nothing changes."""
    return asyncio.run(
        dry_run(context.engine(), context.settings(), params, device_ids, concurrency=concurrency, kind=kind)
    )


def probe(
    devices: Sequence[Device], concurrency: int | None, on_event: Callable[[Any], None] | None
) -> list[ProbeResult]:
    """Each device's names, macOS version and architecture (one exec each), in the order given."""
    engine, settings = context.engine(), context.settings()
    return asyncio.run(probe_devices(engine, settings, devices, concurrency=concurrency, on_event=on_event))


def capture_device(name: str, *, full: bool) -> Capture:
    """What the Mac named `name` says to the workflows' probes (all of them with full). Raises
    CaptureError."""
    return asyncio.run(capture(context.engine(), context.settings(), name, full=full))
