"""Every workflow by the name the orchestrator runs it under, and its typed params class.

"upgrade" is the install workflow under its own name: the same steps (an installed older version is the
install step's "other version" case; a Mac at the target plans nothing mutating); its extras are install
params (`allow_all_apps`, the pkg method's conf preservation, the version check in verify) and
`rollback_params`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

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


class Params(Protocol):
    run_id: str

    def as_json(self) -> dict[str, Any]: ...


UPGRADE = dataclasses.replace(INSTALL, name="upgrade")

WORKFLOWS: dict[str, Workflow] = {
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


def params_from_json(kind: str, data: Mapping[str, Any]) -> Any:
    """The typed params of workflow `kind` from their JSON (KeyError for an unknown kind)."""
    return PARAMS[kind].from_json(data)
