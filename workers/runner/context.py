"""What the steps of one device job share: its work and settings, its step records so far, its SSH link,
its result and the run's stop signal."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from workers.runner.link import Link
from workers.runner.records import StepRecords
from workers.runner.work import DeviceResult, DeviceWork, RunSettings


@dataclass(frozen=True)
class StepContext:
    work: DeviceWork
    settings: RunSettings
    records: StepRecords
    link: Link
    result: DeviceResult
    stop: asyncio.Event
