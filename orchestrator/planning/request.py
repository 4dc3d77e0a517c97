"""What the operator asked for, and the planned run: the types every plan variant takes and gives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DeployRequest", "PlannedRun", "PlanningError", "UpgradeOptions", "WaveRequest"]


class PlanningError(ValueError):
    """The run cannot be planned or resumed; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class DeployRequest:
    """What the operator asked for: targets, and parameters given as flags (None: not given)."""

    groups: list[str]
    limits: list[str]
    switch: str | None = None
    background_url: str | None = None
    version: str | None = None
    method: str | None = None
    expected_team_id: str | None = None
    trust: str | None = None  # ssh | profile | skip (tasks.install.params.TRUST_MODES); None: [trust] mode


@dataclass(frozen=True)
class WaveRequest:
    """How to roll out: cumulative wave sizes, the failure threshold, the pause between waves, canaries."""

    waves: str = "100%"
    max_failures: str | None = None
    pause: float = 0.0
    canary: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpgradeOptions:
    rollback: bool = False
    allow_all_apps: bool = False
    retry_unreachable: float = 0.0  # seconds to keep retrying unreachable Macs (laptops asleep)


@dataclass(frozen=True)
class PlannedRun:
    """A planned run. `params` is exactly what `Run.params_json` holds (and the runner reads)."""

    run_id: str | None  # None when not persisted (dry run)
    params: dict[str, Any]
    device_ids: list[str]  # devices that will run, in name order
    refused: dict[str, tuple[str, str]]  # device name -> (error_type, message), refused before any SSH
    device_names: dict[str, str] | None = None  # device id -> name, for the devices that will run

    def as_json(self) -> dict[str, Any]:
        names = self.device_names or {}
        return {
            "run_id": self.run_id,
            "params": self.params,
            "devices": [names.get(i, i) for i in self.device_ids],
            "refused": {n: {"error_type": t, "message": m} for n, (t, m) in self.refused.items()},
        }

