"""What either driver (local, Celery) needs around a run's device jobs: the run's settings for the runner,
and the watch that stops it when `orchestrate runs halt` (or another driver) halts the run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from orchestrator import runs
from orchestrator.config import Settings
from workers.runner.device import RunSettings
from workers.runner.inputs import RunInputs
from workers.runner.job import timeouts_of

HALT_POLL = 1.0  # seconds between looks at the run's status


def run_settings(settings: Settings, inputs: RunInputs) -> RunSettings:
    """The runner's settings for a run: SSH timeouts and verify rules from settings, the verify window from
    the run's params (else `[deploy] verify_timeout`)."""
    return RunSettings(
        run_id=inputs.run_id,
        workflow=inputs.workflow,
        timeouts=timeouts_of(settings),
        verify_timeout=float(inputs.params.get("verify_timeout") or settings.deploy.verify_timeout),
        verify_interval=settings.verify.interval,
        verify_rules=settings.verify.rules(),
        private_dir=inputs.private_dir,
    )


async def watch_halt(
    engine: Engine, run_id: str, on_halt: Callable[[str], None], every: float = HALT_POLL
) -> None:
    """Until cancelled: every `every` seconds, call on_halt(why) while the run is halted in the database
    (devices mid-step finish that step; the driver starts no other)."""

    def check() -> str | None:
        with Session(engine) as s:
            return runs.halted_by(s, run_id)

    while True:
        await asyncio.sleep(every)
        try:
            why = await asyncio.to_thread(check)
        except OperationalError:
            continue  # the database is restarting: look again next time
        if why is not None:
            on_halt(why)
