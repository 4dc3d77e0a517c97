"""`upgrade`'s wave options through the CLI (local executor) against macsim: `--confirm` asks before each
next wave (yes opens it, no halts the run with the wave untouched on the Macs), `--pause` waits between waves,
`--retry-unreachable 2h` is stored as seconds; and `uninstall --dmg VERSION` runs that DMG's uninstall.sh."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner, Result

import orchestrator.cli as cli
from macsim.artifacts.dmg import write_dmg
from orchestrator.state.models import DeviceJob, Run
from tests.orchestrator.cli_support import cli_env, run
from tests.workers.lab import VERSION, Lab, lab

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

NEW, NEWER = "8.1.0.7", "8.2.0.3"
HOSTS: list[dict[str, Any]] = [{"name": f"mac-{i}", "arch": "x86_64"} for i in (1, 2, 3)]


async def _answering(answer: str, *args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, cli.app, list(args), input=answer)


def _upgrade(engine: Engine, version: str) -> tuple[Run, list[DeviceJob]]:
    with Session(engine) as s:
        r = next(x for x in s.exec(select(Run).where(Run.kind == "upgrade")).all()
             if json.loads(x.params_json)["version"] == version)  # fmt: skip
        jobs = list(s.exec(select(DeviceJob).where(DeviceJob.run_id == r.id).order_by(col(DeviceJob.wave))).all())
        return r, jobs


def _versions(L: Lab) -> dict[str, str | None]:
    return {h["name"]: L.device(h["name"]).installed_version for h in HOSTS}


async def test_confirm_pause_retry_unreachable_and_uninstall_from_a_dmg(
    tmp_path: Path, engine: Engine, orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with lab(tmp_path / "lab", engine, HOSTS) as L:
        cli_env(L, engine, monkeypatch)
        assert (await run("deploy", "--group", "lab", "--version", VERSION)).exit_code == 0
        for v in (NEW, NEWER):
            assert (await run("artifact", "add", str(write_dmg(L.base / "artifacts", v)))).exit_code == 0

        # yes to the question: wave 2 opens, after the pause
        r = await _answering("y\n", "upgrade", "--group", "lab", "--to", NEW, "--waves", "1,100%",
                             "--canary", "mac-1", "--confirm", "--pause", "1s", "--retry-unreachable", "2h")  # fmt: skip
        assert r.exit_code == 0, r.output
        assert "open wave 2 (2 more device(s))?" in r.output
        assert set(_versions(L).values()) == {NEW}
        up, jobs = _upgrade(engine, NEW)
        params = json.loads(up.params_json)
        assert params["retry_unreachable"] == 7200.0 and params["pause"] == 1.0
        first = [j for j in jobs if j.wave == 0]
        second = [j for j in jobs if j.wave == 1]
        assert len(first) == 1 and len(second) == 2
        assert first[0].ended_at is not None and all(j.started_at is not None for j in second)
        gap = min(j.started_at for j in second if j.started_at) - first[0].ended_at
        assert gap >= timedelta(seconds=0.9), gap

        # no to the question: the run halts, the second wave untouched on the Macs
        marks = L.marks()
        r = await _answering("n\n", "upgrade", "--group", "lab", "--to", NEWER, "--waves", "1,100%",
                             "--canary", "mac-1", "--confirm")  # fmt: skip
        assert r.exit_code == 1, r.output
        assert _versions(L) == {"mac-1": NEWER, "mac-2": NEW, "mac-3": NEW}
        assert L.commands("mac-2", since=marks["mac-2"]) == L.commands("mac-3", since=marks["mac-3"]) == []
        up, jobs = _upgrade(engine, NEWER)
        assert up.status == "halted" and {j.status for j in jobs if j.wave == 1} == {"pending"}

        # uninstall --dmg: uninstall.sh from that version's image, not the receipt's file list
        marks = L.marks()
        r = await run("uninstall", "--limit", "mac-1", "--dmg", NEWER)
        assert r.exit_code == 0, r.output
        ran = L.commands("mac-1", since=marks["mac-1"])
        assert any("hdiutil attach" in c for c in ran) and any("uninstall.sh" in c for c in ran), ran
        assert not L.fleet.hosts["mac-1"].mac.fs.exists("/Library/Application Support/1E/Client/1E.Client")
        assert L.device("mac-1").installed_version is None

        # a bad duration is refused before anything runs
        r = await run("upgrade", "--group", "lab", "--to", NEWER, "--retry-unreachable", "2 hours")
        assert r.exit_code == 2 and "2 hours" in r.output, r.output
