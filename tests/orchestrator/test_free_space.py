"""Free space through the real path (`orchestrate deploy`: planning writes the run's params, the install
planner decides): a Mac with room for the DMG, the pkg copy, the payload and the margin is accepted, one
short of it is refused with InsufficientSpace. (Before issue 12's fix the margin and sizes were counted
twice, once by planning's floor and again by the planner, and the roomy Mac was refused too.) The exact byte
boundary is in the golden fixtures tests/tasks/fixtures/install/preflight/space-*.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from tests.orchestrator.cli_support import cli_env, run
from tests.workers.lab import VERSION, lab

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

MIB = 1024 * 1024
DMG = 20 * MIB
NEEDED_MIB = (3 * DMG + 100 * MIB) // MIB  # DMG upload + pkg copy + payload + margin: 160 MiB
HOSTS: list[dict[str, Any]] = [
    {"name": "mac-roomy", "arch": "x86_64", "free_space_mb": NEEDED_MIB + 8},  # less than twice counted
    {"name": "mac-tight", "arch": "x86_64", "free_space_mb": NEEDED_MIB - 1},
]


async def test_a_mac_with_room_enough_is_accepted_one_without_is_refused(
    tmp_path: Path, engine: Engine, orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with lab(tmp_path / "lab", engine, HOSTS, dmg_size=DMG) as L:
        cli_env(L, engine, monkeypatch)
        roomy = L.fleet.hosts["mac-roomy"].mac.free_bytes()
        assert NEEDED_MIB * MIB <= roomy < 2 * NEEDED_MIB * MIB  # room for one count, not for two
        r = await run("deploy", "--group", "lab", "--version", VERSION, "--json")
        assert r.exit_code == 1, r.output
        out = {d["device"]: d for d in json.loads(r.stdout)["devices"]}
        assert out["mac-roomy"]["status"] == "succeeded", out["mac-roomy"]
        tight = out["mac-tight"]
        assert (tight["status"], tight["error_type"]) == ("failed", "InsufficientSpace"), tight
        assert f"{NEEDED_MIB * MIB} needed" in tight["message"], tight
