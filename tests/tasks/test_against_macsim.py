"""End to end against macsim: every fact probe runs in ONE root exec (workers.ssh) and parses; a finished
Mac (the 1E guide's manual procedure) plans zero mutating commands; a small in-test runner carries the
INSTALL workflow out on a fresh Intel Mac and a fresh Apple silicon Mac without Rosetta 2, after which a
second deploy plans nothing mutating and verify says connected.

MACFLEET_DUMP_PROBES=DIR writes each probe's raw output per host (used to write parser fixtures)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from macsim.fleet import Fleet, SimHost
from macsim.keychain import cert_names
from tasks.evidence import DEFAULT_RULES
from tasks.install import INSTALL, CaRef, DmgRef, IdentityRef, InstallParams, MacFacts, identity_import_stdin
from tasks.model import Phase, Plan, ProbeOutput
from tests.macsim.procedure_support import (
    BACKGROUND,
    NEW_VERSION,
    SWITCH,
    Artifacts,
    AsyncsshSession,
    manual_install,
    module_fleet,
    open_asyncssh,
)
from workers.ssh import NOPASSWD, HostKeyPolicy, SshAuth, SshTarget, connect

pytestmark = pytest.mark.asyncio(loop_scope="module")

HOSTS = [
    {"name": "fresh-intel", "arch": "x86_64"},
    {"name": "fresh-m1", "arch": "arm64", "rosetta": False},
    {"name": "done-intel", "arch": "x86_64"},
    {"name": "pkg-m2", "arch": "arm64", "rosetta": True},
]


arts, fleet = module_fleet(HOSTS)


def _ca_ref(pem: Path) -> CaRef:
    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    der = cert.public_bytes(Encoding.DER)
    sha256 = hashlib.sha256(der).hexdigest()
    cn = cert.subject.rfc4514_string()
    names = [a.value for a in cert.subject if a.oid._name == "commonName"]
    return CaRef(
        sha256=sha256,
        sha1=hashlib.sha1(der).hexdigest(),
        subject=cn,
        common_name=str(names[0]) if names else None,
        pem_name=f"ca-{sha256[:16]}.pem",
    )


def make_params(arts: Artifacts, host: SimHost, run_id: str = "0123456789abcdef") -> InstallParams:
    pfx = arts.pfx(host.name)
    _key, cert, _chain = pkcs12.load_key_and_certificates(pfx.read_bytes(), arts.password(pfx).encode())
    assert cert is not None
    der = cert.public_bytes(Encoding.DER)
    dmg = arts.dmg[NEW_VERSION]
    return InstallParams(
        run_id=run_id,
        version=NEW_VERSION,
        switch=SWITCH,
        background_url=BACKGROUND,
        dmg=DmgRef(NEW_VERSION, hashlib.sha256(dmg.read_bytes()).hexdigest(), dmg.stat().st_size, dmg.name),
        identity=IdentityRef(
            hashlib.sha1(der).hexdigest(), hashlib.sha256(der).hexdigest(), tuple(cert_names(cert))
        ),
        cas=(_ca_ref(arts.certs.lab_ca.pem), _ca_ref(arts.certs.switch_ca.pem)),
        private_dir=f"/private/tmp/macfleet-{run_id[:12]}",
    )


async def gather(fleet: Fleet, host: SimHost, params: InstallParams) -> MacFacts:
    probes = INSTALL.fact_commands(params)
    assert all(not cmd.mutating for _, cmd in probes)
    target = SshTarget("127.0.0.1", host.spec.user, host.port)
    conn = await connect(
        target, HostKeyPolicy(trust_on_first_use=True), SshAuth(key_files=(fleet.client_key_path,))
    )
    async with conn:
        result = await conn.run_script([list(c.argv) for _, c in probes], sudo=NOPASSWD, stop_on_error=False)
    outputs = {
        name: ProbeOutput(cmd.argv, step.exit_status, step.stdout.decode(), step.stderr.decode())
        for (name, cmd), step in zip(probes, result.steps, strict=True)
    }
    dump = os.environ.get("MACFLEET_DUMP_PROBES")
    if dump:
        out = Path(dump) / host.name
        out.mkdir(parents=True, exist_ok=True)
        for name, o in outputs.items():
            (out / f"{name}.json").write_text(
                json.dumps(
                    {
                        "argv": list(o.argv),
                        "exit_status": o.exit_status,
                        "stdout": o.stdout,
                        "stderr": o.stderr,
                    },
                    indent=1,
                )
            )
    facts: MacFacts = INSTALL.parse_facts(params, outputs, DEFAULT_RULES)
    if dump:
        (Path(dump) / host.name / "_facts.json").write_text(json.dumps(facts.as_json(), indent=1))
        (Path(dump) / host.name / "_params.json").write_text(json.dumps(params.as_json(), indent=1))
    assert MacFacts.from_json(json.loads(json.dumps(facts.as_json()))) == facts
    return facts


def plans(facts: MacFacts, params: InstallParams) -> dict[str, Plan]:
    return {s.name: s.planner(facts, params) for s in INSTALL.steps}


async def run_workflow(fleet: Fleet, arts: Artifacts, host: SimHost, params: InstallParams) -> MacFacts:
    """A minimal runner: plans every step from the initial facts, uploads over SFTP, runs each command
    as its own exec (sudo -n), honours `unless`, feeds the identity-import stdin. Returns fresh facts."""
    facts = await gather(fleet, host, params)
    pfx = arts.pfx(host.name)
    files = {"dmg": arts.dmg[NEW_VERSION], "pfx": pfx}
    files |= {f"ca:{_ca_ref(p).sha256}": p for p in (arts.certs.lab_ca.pem, arts.certs.switch_ca.pem)}
    async with open_asyncssh(fleet, host) as conn:
        sess = AsyncsshSession(host, conn)
        for step in INSTALL.steps:
            plan = step.planner(facts, params)
            assert plan.refusal is None, plan.refusal.as_json()
            if plan.uploads:
                async with conn.start_sftp_client() as sftp:
                    await sftp.makedirs(params.private_dir, exist_ok=True)
                    await sftp.chmod(params.private_dir, 0o700)
                    for up in plan.uploads:
                        await sftp.put(str(files[up.source]), f"{params.private_dir}/{up.name}")
            for cmd in plan.commands:
                prefix = "sudo -n " if cmd.sudo else ""
                if cmd.unless is not None:
                    probe = await sess.run(prefix + shlex.join(cmd.unless))
                    if probe.status == 0:
                        continue
                stdin = None
                if cmd.stdin == "identity-import":
                    stdin = identity_import_stdin(params, arts.password(pfx)).decode()
                r = await sess.run(prefix + shlex.join(cmd.argv), stdin)
                if step.phase is Phase.VERIFY:
                    continue
                assert r.status in cmd.ok_codes, (
                    step.name,
                    cmd.argv,
                    r.out,
                    step.explain and step.explain(cmd.argv, r.status, r.stdout, r.stderr),
                )
    return await gather(fleet, host, params)


def assert_nothing_to_do(facts: MacFacts, params: InstallParams) -> None:
    p = plans(facts, params)
    mutating = {name: plan.as_json() for name, plan in p.items() if plan.mutating}
    assert not mutating
    assert all(plan.noop is not None for name, plan in p.items() if name != "verify"), {
        n: x.as_json() for n, x in p.items()
    }


async def test_fresh_macs_facts(fleet: Fleet, arts: Artifacts) -> None:
    intel = fleet.hosts["fresh-intel"]
    f = await gather(fleet, intel, make_params(arts, intel))
    assert (f.arch, f.can_run_x86_64, f.client_version, f.conf, f.job.loaded) == (
        "x86_64",
        True,
        None,
        None,
        False,
    )
    assert f.hostname == intel.hostname and f.free_bytes > 0 and f.identities == ()
    m1 = fleet.hosts["fresh-m1"]
    params = make_params(arts, m1)
    f = await gather(fleet, m1, params)
    assert (f.arch, f.can_run_x86_64) == ("arm64", False)
    p = plans(f, params)
    assert p["rosetta"].mutating and p["install"].mutating and p["identity"].mutating
    assert {u.source for u in p["push"].uploads} >= {"dmg", "pfx"}


async def test_finished_mac_plans_nothing_mutating(fleet: Fleet, arts: Artifacts) -> None:
    host = fleet.hosts["done-intel"]
    async with open_asyncssh(fleet, host) as conn:
        await manual_install(AsyncsshSession(host, conn), arts, kickstart=True)
    params = make_params(arts, host)
    facts = await gather(fleet, host, params)
    assert facts.client_version == NEW_VERSION and facts.connected, facts.as_json()
    assert_nothing_to_do(facts, params)


@pytest.mark.parametrize("name", ["fresh-intel", "fresh-m1", "pkg-m2"])
async def test_workflow_installs_then_is_idempotent(fleet: Fleet, arts: Artifacts, name: str) -> None:
    host = fleet.hosts[name]
    params = make_params(arts, host)
    if name == "pkg-m2":  # the pkg path, the team id check and the DMG cache
        params = dataclasses.replace(
            params, method="pkg", expected_team_id="FAKE1ETEAM", cache_dir="/Library/Caches/macfleet"
        )
    after = await run_workflow(fleet, arts, host, params)
    assert after.client_version == NEW_VERSION and after.connected, after.as_json()
    assert not host.mac.fs.exists(params.private_dir)
    if params.cache_path is not None:
        assert after.dmg_cached and host.mac.fs.exists(params.cache_path)
    assert_nothing_to_do(after, params)
    # verify, read-only, judges the Mac done
    async with open_asyncssh(fleet, host) as conn:
        sess = AsyncsshSession(host, conn)
        outs = []
        for cmd in INSTALL.step("verify").planner(after, params).commands:
            r = await sess.run("sudo -n " + shlex.join(cmd.argv))
            outs.append(ProbeOutput(cmd.argv, r.status, r.stdout, r.stderr))
    verdict = INSTALL.judge_verify(after, params, outs)
    assert verdict.done, verdict
