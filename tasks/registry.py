"""Every workflow by the name the orchestrator runs it under, and its typed params class.

A workflow owns its kind (tasks/model.py `Workflow`): its params from a run, the device row after a job,
the facts that become columns, rollback, sample params. Adding one is its module plus a line in WORKFLOWS
and PARAMS here.

"upgrade" is the install workflow under its own name: the same steps (an installed older version is the
install step's "other version" case; a Mac at the target plans nothing mutating); its extras are install
params (`allow_all_apps`, the pkg method's conf preservation, the version check in verify) and
`rollback_params`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from tasks.install import INSTALL, InstallParams
from tasks.logs import LOGS, LogsParams
from tasks.model import Workflow
from tasks.reconfigure import RECONFIGURE, ReconfigureParams
from tasks.service import (
    CHECK,
    RESTART,
    START,
    STOP,
    CheckParams,
    RestartParams,
    StartParams,
    StopParams,
)
from tasks.uninstall import UNINSTALL, UninstallParams

UPGRADE = dataclasses.replace(INSTALL, name="upgrade")

WORKFLOWS: dict[str, Workflow[Any, Any]] = {
    "install": INSTALL,
    "upgrade": UPGRADE,
    "uninstall": UNINSTALL,
    "reconfigure": RECONFIGURE,
    "start": START,
    "stop": STOP,
    "restart": RESTART,
    "logs": LOGS,
    "check": CHECK,
}

PARAMS: dict[str, type[Any]] = {
    "install": InstallParams,
    "upgrade": InstallParams,
    "uninstall": UninstallParams,
    "reconfigure": ReconfigureParams,
    "start": StartParams,
    "stop": StopParams,
    "restart": RestartParams,
    "logs": LogsParams,
    "check": CheckParams,
}


# run kinds that run another kind's workflow: converge re-runs install (every step re-checks the Mac)
ALIASES: dict[str, str] = {"converge": "install"}


def workflow_for(kind: str) -> Workflow[Any, Any] | None:
    """The workflow a run of this kind executes; None for a kind no workflow runs."""
    return WORKFLOWS.get(ALIASES.get(kind, kind))


def params_from_json(kind: str, data: Mapping[str, Any]) -> Any:
    """The typed params of workflow `kind` from their JSON (KeyError for an unknown kind)."""
    return PARAMS[kind].from_json(data)
