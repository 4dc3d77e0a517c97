"""The client's life after install, through the real CLI against macsim Macs: upgrade in waves (the conf
survives, key access is re-granted), rollback, reconfigure, stop/start/restart, converge repairing drift,
logs, uninstall (no receipt, file, job or identity left; only the CAs our runs added removed), runs retry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from macsim.artifacts.dmg import write_dmg
from orchestrator.cli import context
from orchestrator.state.models import DeviceJob, Run
from tests.orchestrator.cli_support import cli_env, last_log, run
from tests.workers.lab import SWITCH, VERSION, Lab, lab

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

NEW = "8.1.0.7"
HOSTS: list[dict[str, Any]] = [
    {"name": "mac-intel", "arch": "x86_64"},
    {"name": "mac-arm", "arch": "arm64", "rosetta": True},
]
CONF = "/Library/Application Support/1E/Client/1E.Client.conf"
RECEIPT = "/private/var/db/receipts/com.1e.pkg.1E.Client.plist"




def conf(L: Lab, name: str) -> str:
    return L.fleet.hosts[name].mac.fs.read_text(CONF)



async def test_lifecycle_through_the_cli(
    tmp_path: Path, engine: Engine, orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with lab(tmp_path / "lab", engine, HOSTS) as L:
        cli_env(L, engine, monkeypatch)
        r = await run("deploy", "--group", "lab", "--version", VERSION)
        assert r.exit_code == 0, r.output

        # reconfigure: keys validated before anything runs; then applied, restarted, verified
        r = await run("reconfigure", "--group", "lab", "NOSUCHKEY=1")
        assert r.exit_code == 2 and "NOSUCHKEY" in r.output
        r = await run("reconfigure", "--group", "lab", "LOGGINGLEVEL=Debug")
        assert r.exit_code == 0, r.output
        assert all("LoggingLevel=Debug" in conf(L, h["name"]) for h in HOSTS)

        # upgrade in waves: the canary first; the conf survives; key access is re-granted (it connects)
        dmg = write_dmg(L.base / "artifacts", NEW)
        assert (await run("artifact", "add", str(dmg))).exit_code == 0
        r = await run("upgrade", "--group", "lab", "--to", NEW, "--waves", "1,100%", "--max-failures", "0",
                      "--canary", "mac-arm")  # fmt: skip
        assert r.exit_code == 0, r.output
        with Session(engine) as s:
            run_row = s.exec(select(Run).where(Run.kind == "upgrade")).one()
            waves = {j.device_id: j.wave for j in s.exec(select(DeviceJob).where(DeviceJob.run_id == run_row.id))}
        assert sorted(waves.values()) == [0, 1]
        assert L.device("mac-arm").installed_version == NEW and waves[L.device("mac-arm").id] == 0
        for h in HOSTS:
            assert "LoggingLevel=Debug" in conf(L, h["name"]), "the upgrade lost the configuration"
            assert f"Connected to Switch {SWITCH}" in last_log(L, h["name"])
            assert L.device(h["name"]).installed_version == NEW

        # stop, start, restart
        r = await run("stop", "--limit", "mac-intel")
        assert r.exit_code == 0, r.output
        assert "com.1e.pkg.1E.Client" not in L.fleet.hosts["mac-intel"].mac.state.launchd
        r = await run("start", "--limit", "mac-intel")
        assert r.exit_code == 0, r.output
        assert f"Connected to Switch {SWITCH}" in last_log(L, "mac-intel")
        assert (await run("restart", "--group", "lab")).exit_code == 0

        # converge repairs drift: a daemon stopped behind our back is started again
        assert (await run("stop", "--limit", "mac-arm")).exit_code == 0
        r = await run("converge", "--group", "lab", "--version", NEW)
        assert r.exit_code == 0, r.output
        assert f"Connected to Switch {SWITCH}" in last_log(L, "mac-arm")

        # logs: read-only, one Mac
        r = await run("logs", "mac-intel", "--lines", "5", "--json")
        assert r.exit_code == 0, r.output
        logs = json.loads(r.stdout)["logs"]
        assert "Connected to Switch" in logs["client"] and len(logs["client"].strip().splitlines()) <= 5

        # uninstall with the identity and the CAs our runs added
        r = await run("uninstall", "--group", "lab", "--remove-identity", "--remove-ca")
        assert r.exit_code == 0, r.output
        for h in HOSTS:
            mac = L.fleet.hosts[h["name"]].mac
            assert not mac.fs.exists(RECEIPT)
            assert not mac.fs.exists("/Library/Application Support/1E/Client/1E.Client")
            assert not mac.fs.exists("/Library/LaunchDaemons/com.1e.pkg.1E.Client.plist")
            assert "com.1e.pkg.1E.Client" not in mac.state.launchd
            assert mac.keychain.identities() == []


async def test_failed_upgrade_rolls_back_and_retry_failed_reruns_only_those(
    tmp_path: Path, engine: Engine, orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with lab(tmp_path / "lab", engine, HOSTS) as L:
        cli_env(L, engine, monkeypatch)
        assert (await run("deploy", "--group", "lab", "--version", VERSION)).exit_code == 0
        assert (await run("artifact", "add", str(write_dmg(L.base / "artifacts", NEW)))).exit_code == 0
        L.fleet.set_faults("mac-intel", fail_tools={"hdiutil": 1})  # its upgrade cannot mount the DMG
        r = await run("upgrade", "--group", "lab", "--to", NEW, "--waves", "100%", "--max-failures", "1",
                      "--json")  # fmt: skip
        assert r.exit_code == 1, r.output
        out = {d["device"]: d for d in json.loads(r.stdout)["devices"]}
        assert out["mac-arm"]["status"] == "succeeded" and out["mac-intel"]["status"] == "failed"
        assert L.device("mac-intel").installed_version == VERSION

        L.fleet.set_faults("mac-intel", fail_tools={})
        with Session(engine) as s:
            run_id = s.exec(select(Run).where(Run.kind == "upgrade")).one().id
        before = L.marks()
        r = await run("runs", "retry", run_id[:10], "--failed")
        assert r.exit_code == 0, r.output
        assert L.commands("mac-arm", since=before["mac-arm"]) == []  # only the failed device ran
        assert L.device("mac-intel").installed_version == NEW

        # a failed upgrade with --rollback: the device is put back on the version it had, recorded so
        unsigned = write_dmg(L.base / "artifacts", "8.2.0.1", signed=False)
        assert (await run("artifact", "add", str(unsigned))).exit_code == 0
        monkeypatch.setenv("ORCHESTRATE_DEPLOY__EXPECTED_TEAM_ID", "FAKE1ETEAM")
        context.settings.cache_clear()  # the CLI reads its settings once per process
        r = await run("upgrade", "--limit", "mac-intel", "--to", "8.2.0.1", "--rollback", "--json")
        assert r.exit_code == 1, r.output
        (dev,) = json.loads(r.stdout)["devices"]
        assert dev["status"] == "rolled_back", dev
        assert "SignatureMismatch" in (dev["error_type"] or "") and f"rolled back to {NEW}" in dev["message"]
        assert L.device("mac-intel").installed_version == NEW
        assert f"Connected to Switch {SWITCH}" in last_log(L, "mac-intel")


async def test_upgrade_of_20_halts_at_the_threshold_then_resume_finishes(
    tmp_path: Path, engine: Engine, orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts: list[dict[str, Any]] = [
        {"name": f"mac-{i:02d}", "arch": ("x86_64", "arm64")[i % 2], "rosetta": True} for i in range(1, 21)
    ]
    broken = ["mac-03", "mac-04", "mac-12"]  # mac-03/04 in wave 2 (devices 2-5), mac-12 in wave 3
    async with lab(tmp_path / "lab", engine, hosts) as L:
        cli_env(L, engine, monkeypatch)
        assert (await run("deploy", "--group", "lab", "--version", VERSION)).exit_code == 0
        assert (await run("artifact", "add", str(write_dmg(L.base / "artifacts", NEW)))).exit_code == 0
        for name in broken:
            L.fleet.set_faults(name, fail_tools={"hdiutil": 1})
        before = L.marks()
        r = await run("upgrade", "--group", "lab", "--to", NEW, "--waves", "1,5%,25%,100%",
                      "--max-failures", "10%")  # fmt: skip
        assert r.exit_code == 1, r.output
        assert "2 of 5 attempted device(s) failed" in r.output and "mac-03, mac-04" in r.output
        with Session(engine) as s:
            run_id = s.exec(select(Run).where(Run.kind == "upgrade")).one().id
        shown = json.loads((await run("runs", "show", run_id, "--json")).stdout)
        assert shown["status"] == "halted"
        assert [w["devices"] for w in shown["waves"]] == [1, 4, 15]
        assert shown["waves"][2]["counts"] == {"pending": 15}  # the last wave untouched...
        for name in [f"mac-{i:02d}" for i in range(6, 21)]:  # ...on the Macs too: not one command ran
            assert L.commands(name, since=before[name]) == [], name

        for name in broken:  # the operator fixes the cause, then resumes: the failed ones are retried
            L.fleet.set_faults(name, fail_tools={})
        r = await run("runs", "resume", run_id)
        assert r.exit_code == 0, r.output
        for h in hosts:
            assert L.device(h["name"]).installed_version == NEW, h["name"]
