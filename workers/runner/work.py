"""What one device job is given (`DeviceWork`, `RunSettings`) and what it gives back (`DeviceResult`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tasks.evidence import DEFAULT_RULES, VerifyRules
from tasks.model import Plan, Workflow
from workers.runner.materials import Materials
from workers.ssh import HostKeyPolicy, SshAuth, SshTarget, SudoMode, Timeouts


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
