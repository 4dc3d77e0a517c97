"""The verify step against every log dialect macsim's fake client speaks (`faults.client_log`), with the REAL
runner: healthy Macs are reported succeeded whatever the wording (or with no positive line at all when the
Switch socket is open), a silent one (no line, no socket) unverified, broken ones (an error line after the
(re)start) failed. Verify costs ONE exec (the poll loops on the Mac), a full install at most six, and a
re-run of a healthy Mac plans no mutating command."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from macsim.fleet import Fleet
from macsim.spec import Faults
from tasks.evidence import DEFAULT_RULES, VerifyRules
from tasks.install import INSTALL
from tasks.install.verify import POLL_NAME
from tasks.reconfigure import RECONFIGURE, ReconfigureParams
from tasks.registry import WORKFLOWS
from tasks.service import RestartParams
from tests.macsim.procedure_support import NEW_VERSION, Artifacts, module_fleet
from tests.tasks.test_lifecycle_macsim import install_params, materials
from workers.runner.device import DeviceResult, DeviceRunner, DeviceWork, RunSettings
from workers.runner.recorder import NullRecorder
from workers.ssh import NOPASSWD, HostKeyPolicy, SshAuth, SshTarget

pytestmark = pytest.mark.asyncio(loop_scope="module")

DIALECTS = ("standard", "reworded", "no-start-line", "socket-only", "silent")
HOSTS = [{"name": f"d-{d}", "faults": {"client_log": d}} for d in DIALECTS] + [
    {"name": f"broken-{d}", "faults": {"client_log": d}} for d in ("standard", "reworded", "no-start-line")
] + [{"name": "d-remarked"}, {"name": "d-custom", "faults": {"client_log": "silent"}}]
WINDOW = 2.0


arts, fleet = module_fleet(HOSTS)


async def deploy(
    fleet: Fleet, arts: Artifacts, name: str, rules: VerifyRules = DEFAULT_RULES, **over: Any
) -> tuple[DeviceResult, int]:
    """One install with the real runner; (result, execs of the verify poll on the Mac)."""
    host = fleet.hosts[name]
    before = len(host.mac.commands)
    result = await _run(fleet, arts, name, INSTALL, install_params(arts, host, NEW_VERSION, **over), rules)
    polls = sum(1 for c in host.mac.commands[before:] if POLL_NAME in c.command)
    return result, polls


@pytest.mark.parametrize("dialect", ["standard", "reworded", "no-start-line", "socket-only"])
async def test_healthy_mac_succeeds_in_every_wording(fleet: Fleet, arts: Artifacts, dialect: str) -> None:
    r, polls = await deploy(fleet, arts, f"d-{dialect}")
    assert (r.status, r.connected) == ("succeeded", True), (r.step, r.error_type, r.message)
    assert polls == 1 and r.round_trips <= 6
    again, polls = await deploy(fleet, arts, f"d-{dialect}")
    assert again.status == "succeeded" and again.mutating_commands == 0
    assert not any(p.mutating for p in again.plans.values()), [n for n, p in again.plans.items() if p.mutating]
    assert polls == 1


async def test_silent_mac_is_unverified_not_failed(fleet: Fleet, arts: Artifacts) -> None:
    host = fleet.hosts["d-silent"]
    r, polls = await deploy(fleet, arts, "d-silent")
    assert host.mac.state.launchd["com.1e.pkg.1E.Client"]["verdict"]["connected"]  # it IS connected
    assert (r.status, r.connected, r.step, r.error_type) == ("unverified", None, "verify", "Unverified")
    assert "neither its log since the (re)start nor an established TCP connection" in (r.message or "")
    assert polls == 1 and r.round_trips <= 6
    assert r.executed[-1][0] == "cleanup"  # the steps after verify still ran


@pytest.mark.parametrize("dialect", ["standard", "reworded", "no-start-line"])
async def test_broken_mac_fails_on_its_error_line(fleet: Fleet, arts: Artifacts, dialect: str) -> None:
    # no CA in the run: the client's chain is not trusted and it says so, in its own words
    r, polls = await deploy(fleet, arts, f"broken-{dialect}", cas=())
    assert (r.status, r.step, r.error_type, r.connected) == ("failed", "verify", "NotConnected", False)
    assert "not trusted" in (r.message or "")
    assert polls == 1


async def test_only_lines_after_the_restart_count(fleet: Fleet, arts: Artifacts) -> None:
    """A client that said "Connected" before this run's restart proves nothing about the restarted one: the
    start step marks the log's size right before the restart and verify reads only what follows."""
    name = "d-remarked"
    r, _ = await deploy(fleet, arts, name)
    assert r.status == "succeeded"
    assert "Connected to Switch" in fleet.hosts[name].mac.fs.read_text("/Library/Logs/1E.Client.log")
    fleet.set_faults(name, client_log="silent")  # the restarted client says nothing, opens no socket
    r = await _run(fleet, arts, name, WORKFLOWS["restart"], RestartParams("r1"))
    assert (r.status, r.step, r.connected) == ("unverified", "verify", None), (r.error_type, r.message)


async def test_facts_read_the_log_with_the_runs_patterns(fleet: Fleet, arts: Artifacts) -> None:
    """A client whose log says it is connected only in words the default patterns do not know: with the
    run's [verify] patterns the facts judge that log as verify does, so a re-run leaves the running client
    alone, and so does a reconfigure that changes nothing; with the defaults both restart it."""
    name, log = "d-custom", "/Library/Logs/1E.Client.log"
    fs = fleet.hosts[name].mac.fs
    first, _ = await deploy(fleet, arts, name)
    assert first.status == "unverified", (first.step, first.error_type, first.message)
    line = "2026-12-06 12:00:00 Handshake with the switch complete"
    assert not DEFAULT_RULES.is_connected(line)
    fs.write_text(log, fs.read_text(log) + line + "\n")
    rules = VerifyRules(connected=("handshake with the switch complete",))
    custom, _ = await deploy(fleet, arts, name, rules)
    assert custom.mutating_commands == 0, [n for n, p in custom.plans.items() if p.mutating]
    assert custom.facts is not None and custom.facts.conf is not None
    same = ReconfigureParams(f"run-{name}", (("SWITCH", custom.facts.conf["Switch"]),))
    kept = await _run(fleet, arts, name, RECONFIGURE, same, rules)
    assert kept.mutating_commands == 0, [(n, p.commands) for n, p in kept.plans.items() if p.mutating]
    restarted = await _run(fleet, arts, name, RECONFIGURE, same)
    assert "restart" in [n for n, p in restarted.plans.items() if p.mutating]
    default, _ = await deploy(fleet, arts, name)
    assert "start" in [n for n, p in default.plans.items() if p.mutating]


async def _run(
    fleet: Fleet, arts: Artifacts, name: str, workflow: Any, params: Any, rules: VerifyRules = DEFAULT_RULES
) -> DeviceResult:
    host = fleet.hosts[name]
    work = DeviceWork(
        job_id=f"job-{name}", device_id=name, name=name, attempt=1,
        target=SshTarget("127.0.0.1", host.spec.user, host.port),
        auth=SshAuth(key_files=(fleet.client_key_path,)), host_keys=HostKeyPolicy(trust_on_first_use=True),
        sudo=NOPASSWD, params=params, materials=materials(arts, host, params),
    )  # fmt: skip
    settings = RunSettings(run_id=f"run-{name}", workflow=workflow, verify_timeout=WINDOW, verify_interval=0.1,
                           verify_rules=rules)  # fmt: skip
    return await DeviceRunner(work, settings, NullRecorder()).run()


def test_dialects_cover_the_knob() -> None:
    assert set(DIALECTS) == set(typing.get_args(Faults.model_fields["client_log"].annotation))
