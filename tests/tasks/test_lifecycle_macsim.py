"""The lifecycle workflows end to end against macsim with the REAL runner (workers.runner.device.DeviceRunner
and a NullRecorder): install an older version, upgrade (the conf survives, key access is re-granted, a
re-run changes nothing), an upgrade with the re-grant skipped (verify catches the key-access failure),
rollback, reconfigure (the new Switch shows in the log), stop/start/restart, logs, and uninstall by both
paths (no receipt, no file, no launchd job, identity and OUR CA gone when asked, the other CA kept).

MACFLEET_DUMP_FACTS=DIR writes each run's facts (the planner fixtures' facts came from here)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from macsim.client1e.conf import parse_conf
from macsim.fleet import Fleet, SimHost
from macsim.keychain import cert_names
from tasks.facts import BINARY, CONF, PLIST, ClientFacts
from tasks.install import (
    INSTALL,
    DmgRef,
    IdentityRef,
    InstallParams,
    identity_import_stdin,
    rollback_params,
)
from tasks.logs import LogsParams
from tasks.model import Workflow, noop
from tasks.reconfigure import ReconfigureParams
from tasks.registry import WORKFLOWS
from tasks.service import RestartParams, StartParams, StopParams
from tasks.uninstall import UninstallParams
from tests.macsim.procedure_support import (
    BACKGROUND,
    NEW_VERSION,
    OLD_VERSION,
    SWITCH,
    Artifacts,
    module_fleet,
)
from tests.tasks.test_against_macsim import _ca_ref
from workers.runner.device import DeviceResult, DeviceRunner, DeviceWork, Materials, RunSettings
from workers.runner.recorder import NullRecorder
from workers.ssh import NOPASSWD, HostKeyPolicy, SshAuth, SshTarget

pytestmark = pytest.mark.asyncio(loop_scope="module")

HOSTS = [
    {"name": "life-intel", "arch": "x86_64"},
    {"name": "life-pkg", "arch": "arm64", "rosetta": True},
    {"name": "life-nogrant", "arch": "x86_64"},
]
NEW_SWITCH = "tachyon2.acme.local:4000"
_runs = 0


arts, fleet = module_fleet(HOSTS)


def dmg_ref(arts: Artifacts, version: str) -> DmgRef:
    dmg = arts.dmg[version]
    return DmgRef(version, hashlib.sha256(dmg.read_bytes()).hexdigest(), dmg.stat().st_size, dmg.name)


def install_params(arts: Artifacts, host: SimHost, version: str, **over: Any) -> InstallParams:
    pfx = arts.pfx(host.name)
    _key, cert, _chain = pkcs12.load_key_and_certificates(pfx.read_bytes(), arts.password(pfx).encode())
    assert cert is not None
    der = cert.public_bytes(Encoding.DER)
    p = InstallParams(
        run_id=f"run{version.replace('.', '')}",
        version=version,
        switch=SWITCH,
        background_url=BACKGROUND,
        dmg=dmg_ref(arts, version),
        identity=IdentityRef(
            hashlib.sha1(der).hexdigest(), hashlib.sha256(der).hexdigest(), tuple(cert_names(cert))
        ),
        cas=(_ca_ref(arts.certs.lab_ca.pem), _ca_ref(arts.certs.switch_ca.pem)),
        private_dir=f"/private/tmp/macfleet-{version.replace('.', '')}",
    )
    return dataclasses.replace(p, **over)


def materials(arts: Artifacts, host: SimHost, params: Any) -> Materials:
    sources: dict[str, Path | bytes] = {}
    dmg = getattr(params, "dmg", None)
    if dmg is not None:
        sources["dmg"] = arts.dmg[dmg.version]
    pfx = arts.pfx(host.name)
    sources["pfx"] = pfx
    for pem in (arts.certs.lab_ca.pem, arts.certs.switch_ca.pem):
        sources[f"ca:{_ca_ref(pem).sha256}"] = pem
    if isinstance(params, InstallParams):
        sources["stdin:identity-import"] = identity_import_stdin(params, arts.password(pfx))
    return Materials(sources)


async def run(fleet: Fleet, arts: Artifacts, name: str, kind: str | Workflow, params: Any) -> DeviceResult:
    """One device through a workflow with the real DeviceRunner."""
    global _runs
    _runs += 1
    host = fleet.hosts[name]
    workflow = WORKFLOWS[kind] if isinstance(kind, str) else kind
    work = DeviceWork(
        job_id=f"job{_runs}",
        device_id=name,
        name=name,
        attempt=1,
        target=SshTarget("127.0.0.1", host.spec.user, host.port),
        auth=SshAuth(key_files=(fleet.client_key_path,)),
        host_keys=HostKeyPolicy(trust_on_first_use=True),
        sudo=NOPASSWD,
        params=params,
        materials=materials(arts, host, params),
    )
    settings = RunSettings(run_id=f"run{_runs}", workflow=workflow, verify_timeout=10.0, verify_interval=0.05)
    result = await DeviceRunner(work, settings, NullRecorder()).run()
    dump = os.environ.get("MACFLEET_DUMP_FACTS")
    if dump and result.facts is not None:
        out = Path(dump) / f"{_runs:02d}-{name}-{workflow.name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"facts": result.facts.as_json(), "params": params.as_json()}, indent=1))
    return result


def ok(r: DeviceResult) -> DeviceResult:
    assert r.status == "succeeded", (r.step, r.error_type, r.message)
    return r


def unchanged(r: DeviceResult) -> None:
    ok(r)
    assert r.mutating_commands == 0, {n: p.as_json() for n, p in r.plans.items() if p.mutating}
    assert not any(p.mutating for p in r.plans.values())


def conf_of(host: SimHost) -> dict[str, str]:
    return parse_conf(host.mac.fs.read_text(CONF))


def last_log_line(host: SimHost) -> str:
    return host.mac.fs.read_text("/Library/Logs/1E.Client.log").strip().splitlines()[-1]


async def test_install_upgrade_rollback_reconfigure_service_logs_uninstall(
    fleet: Fleet, arts: Artifacts
) -> None:
    name = "life-intel"
    host = fleet.hosts[name]
    old = install_params(arts, host, OLD_VERSION)
    r = ok(await run(fleet, arts, name, "install", old))
    assert r.connected and host.mac.state.launchd

    # a setting beyond Switch/URL, to see it survive the upgrade
    ok(await run(fleet, arts, name, "reconfigure", ReconfigureParams("r1", (("LOGGINGLEVEL", "debug"),))))
    assert conf_of(host)["LoggingLevel"] == "Debug"
    unchanged(
        await run(fleet, arts, name, "reconfigure", ReconfigureParams("r1", (("LoggingLevel", "Debug"),)))
    )

    new = install_params(arts, host, NEW_VERSION)
    r = ok(await run(fleet, arts, name, "upgrade", new))
    assert r.connected and r.plans["identity"].mutating  # key access re-granted to the new binary
    assert conf_of(host)["LoggingLevel"] == "Debug" and conf_of(host)["Switch"] == SWITCH
    assert f"Connected to Switch {SWITCH}" in last_log_line(host)
    unchanged(await run(fleet, arts, name, "upgrade", new))  # at the target, connected: nothing to do

    back = rollback_params(new, dmg_ref(arts, OLD_VERSION))
    r = ok(await run(fleet, arts, name, "upgrade", back))
    assert r.facts.client_version == NEW_VERSION  # facts before the run
    assert _receipt_version(host) == OLD_VERSION  # installing the older pkg over the newer one works
    assert f"Connected to Switch {SWITCH}" in last_log_line(host)

    r = ok(await run(fleet, arts, name, "reconfigure", ReconfigureParams("r2", (("SWITCH", NEW_SWITCH),))))
    assert r.plans["update"].mutating and r.plans["restart"].mutating
    assert f"Connected to Switch {NEW_SWITCH}" in last_log_line(host)
    unchanged(await run(fleet, arts, name, "reconfigure", ReconfigureParams("r2", (("SWITCH", NEW_SWITCH),))))

    ok(await run(fleet, arts, name, "stop", StopParams("s1")))
    assert "com.1e.pkg.1E.Client" not in host.mac.state.launchd
    unchanged(await run(fleet, arts, name, "stop", StopParams("s1")))
    r = ok(await run(fleet, arts, name, "start", StartParams("s2")))
    assert r.connected and r.plans["start"].commands[1].argv[:2] == ("launchctl", "load")
    unchanged(await run(fleet, arts, name, "start", StartParams("s2")))
    lines_before = len(host.mac.fs.read_text("/Library/Logs/1E.Client.log").splitlines())
    r = ok(await run(fleet, arts, name, "restart", RestartParams("s3")))
    assert r.connected and r.plans["restart"].commands[1].argv[:3] == ("launchctl", "kickstart", "-k")
    assert len(host.mac.fs.read_text("/Library/Logs/1E.Client.log").splitlines()) > lines_before

    r = ok(await run(fleet, arts, name, "logs", LogsParams("l1", lines=5, daemon=True)))
    assert isinstance(r.facts, ClientFacts) and set(r.facts.logs) == {"client", "daemon"}
    assert len(r.facts.logs["client"].splitlines()) == 5
    assert f"Connected to Switch {NEW_SWITCH}" in r.facts.logs["client"]
    assert "1E Client daemon started" in r.facts.logs["daemon"]
    assert r.mutating_commands == 0 and r.round_trips <= 2

    lab_ca = _ca_ref(arts.certs.lab_ca.pem)
    switch_ca = _ca_ref(arts.certs.switch_ca.pem)
    gone = UninstallParams(
        run_id="u1",
        private_dir="/private/tmp/macfleet-u1",
        remove_identity=True,
        identity_sha1=new.identity.sha1,
        remove_ca_sha1s=(lab_ca.sha1,),  # the switch CA "was there before": never removed
    )
    r = ok(await run(fleet, arts, name, "uninstall", gone))
    assert r.plans["remove"].commands[-1].argv == ("pkgutil", "--forget", "com.1e.pkg.1E.Client")
    _assert_uninstalled(host)
    kc = host.mac.keychain
    assert not kc.identities()
    held = {c.sha1 for c in kc.certs}
    assert lab_ca.sha1.upper() not in held and switch_ca.sha1.upper() in held
    unchanged(await run(fleet, arts, name, "uninstall", gone))
    # nothing installed: start and reconfigure refuse
    r = await run(fleet, arts, name, "start", StartParams("s4"))
    assert (r.status, r.error_type) == ("failed", "ClientNotInstalled")


def _receipt_version(host: SimHost) -> str | None:
    from macsim.client1e import receipts

    rec = receipts.read_receipt(host.mac.fs, "com.1e.pkg.1E.Client")
    return rec.version if rec is not None else None


def _assert_uninstalled(host: SimHost) -> None:
    fs = host.mac.fs
    assert _receipt_version(host) is None
    for path in (BINARY, CONF, PLIST):
        assert not fs.exists(path), path
    assert "com.1e.pkg.1E.Client" not in host.mac.state.launchd


async def test_pkg_upgrade_keeps_conf_with_allow_all_apps_then_uninstall_sh(
    fleet: Fleet, arts: Artifacts
) -> None:
    name = "life-pkg"
    host = fleet.hosts[name]
    ok(await run(fleet, arts, name, "install", install_params(arts, host, OLD_VERSION, method="pkg")))
    ok(await run(fleet, arts, name, "reconfigure", ReconfigureParams("r1", (("LOGGINGLEVEL", "Trace"),))))
    new = install_params(arts, host, NEW_VERSION, method="pkg", allow_all_apps=True)
    r = ok(await run(fleet, arts, name, "upgrade", new))
    cmds = [c.argv for c in r.plans["install"].commands]
    assert ("cp", "-p", CONF, new.saved_conf_path) in cmds and ("cp", "-p", new.saved_conf_path, CONF) in cmds
    assert conf_of(host)["LoggingLevel"] == "Trace"  # the plain pkg reset it; the saved copy came back
    assert r.connected and _receipt_version(host) == NEW_VERSION
    # -A: every application may use the key (the runner warns about it)
    (ident,) = host.mac.keychain.identities()
    assert ident.key.allows("/some/other/app", "0" * 64)
    unchanged(await run(fleet, arts, name, "upgrade", new))

    with_dmg = UninstallParams(
        run_id="u2", private_dir="/private/tmp/macfleet-u2", dmg=dmg_ref(arts, NEW_VERSION)
    )
    r = ok(await run(fleet, arts, name, "uninstall", with_dmg))
    assert r.plans["remove"].commands[0].argv[-1].endswith("/scripts/uninstall.sh")
    _assert_uninstalled(host)
    assert host.mac.keychain.identities()  # not asked to remove it
    assert not host.mac.fs.exists(with_dmg.private_dir) and not host.mac.state.mounts
    unchanged(await run(fleet, arts, name, "uninstall", with_dmg))


async def test_upgrade_without_regrant_is_caught_by_verify(fleet: Fleet, arts: Artifacts) -> None:
    name = "life-nogrant"
    host = fleet.hosts[name]
    ok(await run(fleet, arts, name, "install", install_params(arts, host, OLD_VERSION)))
    skipped = dataclasses.replace(
        WORKFLOWS["upgrade"],
        steps=tuple(
            dataclasses.replace(s, planner=lambda f, p: noop("re-grant skipped by the test"))
            if s.name == "identity"
            else s
            for s in INSTALL.steps
        ),
    )
    r = await run(fleet, arts, name, skipped, install_params(arts, host, NEW_VERSION))
    assert (r.status, r.step, r.error_type) == ("failed", "verify", "NotConnected"), r.message
    assert "private key" in (r.message or "") and "-T" in (r.message or "")
    # the real upgrade repairs it
    r = ok(await run(fleet, arts, name, "upgrade", install_params(arts, host, NEW_VERSION)))
    assert r.connected
