"""The install workflow object: its steps, the fact script, `identity_import_stdin`, and what install means
to the runner (params from a run, the device row after it, rollback, the CAs it trusted)."""

from __future__ import annotations

from collections.abc import Mapping

from tasks import facts as f
from tasks.evidence import VerifyRules
from tasks.facts import BINARY, MacFacts
from tasks.hostnames import DEFAULT_NAME_RULE
from tasks.install import explain, steps
from tasks.install.params import CACHE_DIR, InstallParams, rollback_params
from tasks.install.trust import AWAITING_TRUST_TYPES
from tasks.install.verify import judge_verify
from tasks.model import (
    SAMPLE_PRIVATE_DIR,
    SAMPLE_RUN_ID,
    Command,
    DeviceUpdate,
    Executed,
    JobInputs,
    Outcome,
    ParamsError,
    Phase,
    ProbeOutput,
    Read,
    Rollback,
    StepDef,
    Workflow,
    observed,
)
from tasks.refs import CaRef, DmgRef, IdentityRef

# `security -i` reads lines with a 4,096-byte buffer: at most 4,095 characters are taken and the rest of a
# longer line runs as a new command; words split on blanks, "..." groups (macsim/tools/security.py, after
# Apple's security.c). The password alphabet keeps the line free of quotes, backslashes and blanks.
SECURITY_LINE_MAX = 4094
_PASSWORD_FORBIDDEN = set("\"'\\\n\r\t ")


def fact_commands(params: InstallParams) -> tuple[tuple[str, Command], ...]:
    """Read-only probes, run in ONE exec as root, continuing past failures."""
    probes = list(f.mac_fact_commands())
    if params.cache_path is not None:
        probes.append(("dmg_cache", Command(("shasum", "-a", "256", params.cache_path), mutating=False)))
    return tuple(probes)


def parse_facts(params: InstallParams, outputs: Mapping[str, ProbeOutput], rules: VerifyRules) -> MacFacts:
    f.require(outputs, fact_commands(params))
    cached = False
    if params.cache_path is not None:
        cached = f.parse_shasum(outputs["dmg_cache"]) == params.dmg.sha256.lower()
    return f.parse_mac_facts(outputs, dmg_cached=cached, rules=rules)


def identity_import_stdin(params: InstallParams, password: str) -> bytes:
    """The `security -i` input that imports the pushed PFX into the System keychain, granting the client
    binary access (-T), or every application (-A) when `params.allow_all_apps` (the runner warns). The
    password goes on stdin, never in argv. Raises ValueError for a password with
    quotes, backslashes, blanks or line breaks, or a line `security -i` would cut."""
    if not password:
        raise ValueError("empty PFX password")
    bad = sorted(set(password) & _PASSWORD_FORBIDDEN)
    if bad or not password.isprintable():
        raise ValueError("the PFX password must be printable, without quotes, backslashes or blanks")
    for path in (params.pfx_path, BINARY):
        if '"' in path or "\\" in path or "\n" in path:
            raise ValueError(f"path unusable in a security -i line: {path!r}")
    pfx = params.pfx_path if " " not in params.pfx_path else f'"{params.pfx_path}"'
    access = "-A" if params.allow_all_apps else f'-T "{BINARY}"'
    line = f"import {pfx} -k {f.SYSTEM_KEYCHAIN} -t agg -f pkcs12 -P {password} {access}"
    if len(line) > SECURITY_LINE_MAX:
        raise ValueError(f"security -i line of {len(line)} characters: at most {SECURITY_LINE_MAX} are read")
    return (line + "\n").encode()


def build_params(job: JobInputs) -> InstallParams:
    """The install params of one device from the run's params, its certificate, the run's DMG and CAs."""
    p = job.run_params
    if job.identity is None:
        raise ParamsError(
            "NoCertificate", f"{job.device_name} has no client certificate: orchestrate certs add PFX"
        )
    if job.dmg is None:
        raise ParamsError("ArtifactMissing", "the run names no DMG")
    return InstallParams(
        run_id=job.run_id,
        version=str(p["version"]),
        switch=str(p["switch"]),
        background_url=str(p["background_url"]),
        dmg=job.dmg,
        identity=job.identity,
        cas=job.cas,
        private_dir=job.private_dir,
        cache_dir=CACHE_DIR if p.get("cache_dmg") else None,
        method=str(p.get("method") or "install.sh"),
        expected_team_id=p.get("expected_team_id"),
        min_free_bytes=int(p.get("min_free_bytes") or 0),
        allow_all_apps=bool(p.get("allow_all_apps")),
        name_rule=str(p.get("name_rule") or DEFAULT_NAME_RULE),
        trust_mode=str(p.get("trust_mode") or "ssh"),
    )


def sample_params(mac: MacFacts | None) -> InstallParams:
    """Install params a run could have on this Mac (its own version, conf, identity and first CA), so the
    planners name every probe they use; a capture runs only their read-only commands."""
    conf = dict(mac.conf or {}) if mac is not None else {}
    version = (mac.client_version if mac is not None else None) or "1.0"
    ident = mac.identities[0].sha1 if mac is not None and mac.identities else "0" * 40
    return InstallParams(
        run_id=SAMPLE_RUN_ID,
        version=version,
        switch=conf.get("Switch") or "switch.invalid:443",
        background_url=conf.get("BackgroundChannelUrl") or "https://switch.invalid/Background/",
        dmg=DmgRef(version, "0" * 64, 0, f"1e.client-macOS_v{version}.dmg"),
        identity=IdentityRef(ident, "0" * 64, (mac.hostname,) if mac is not None else ()),
        cas=tuple(
            CaRef(c.sha256 or "0" * 64, c.sha1, c.label or "", c.label, f"ca-{i}.pem")
            for i, c in enumerate(mac.certificates[:1] if mac is not None else ())
        ),
        private_dir=SAMPLE_PRIVATE_DIR,
        cache_dir=CACHE_DIR,
    )


def device_update(outcome: Outcome, connected: bool | None, params: InstallParams) -> DeviceUpdate:
    """The client is in at the target version unless the job failed: connected when verified, unknown when
    unverified, not yet when the CA trust awaits (converge finishes it once trust is seen)."""
    if outcome is Outcome.SUCCEEDED:
        return DeviceUpdate(installed_version=params.version, connected=True)
    if outcome is Outcome.UNVERIFIED:
        return DeviceUpdate(installed_version=params.version, connected=None)
    if outcome is Outcome.AWAITING_TRUST:
        return DeviceUpdate(installed_version=params.version, connected=False)
    return observed(outcome, connected, params)


def previous_version(facts: MacFacts, params: InstallParams) -> str | None:
    """The version the Mac had before this job, when it had one other than the target."""
    v = facts.client_version
    return v if v is not None and v != params.version else None


def target_version(params: InstallParams) -> str:
    return params.version


def trusted_cas(params: InstallParams, executed: Executed) -> tuple[CaRef, ...]:
    """The CAs this job put in the System keychain: `add-trusted-cert` that ran (a refused one too: it adds
    the certificate before it asks for the trust change) or `add-certificates`."""
    by_path = {params.ca_path(ca): ca for ca in params.cas}
    return tuple(
        by_path[argv[-1]]
        for step, argv in executed
        if step == "trust" and {"add-trusted-cert", "add-certificates"} & set(argv) and argv[-1] in by_path
    )


# failures after the new version may be in: put back the one the Mac had (the identity step re-grants key
# access to the older binary)
ROLLBACK = Rollback(
    after=frozenset({"install", "identity", "start", "verify"}),
    previous=previous_version,
    target=target_version,
    params=rollback_params,
)


INSTALL = Workflow(
    name="install",
    steps=(
        StepDef("preflight", steps.preflight, description="host name, architecture, free space"),
        StepDef("rosetta", steps.rosetta, explain=explain.explain_rosetta, description="Rosetta 2 on arm64"),
        StepDef("push", steps.push, phase=Phase.PUSH, description="DMG, PFX and CA PEMs to the private dir"),
        StepDef("mount", steps.mount, explain=explain.explain_hdiutil, description="hdiutil attach"),
        StepDef("install", steps.install, explain=explain.explain_install, description="install.sh or pkg"),
        StepDef(
            "unmount",
            steps.unmount,
            always=True,
            requires="mount",
            explain=explain.explain_hdiutil,
            description="hdiutil detach",
        ),
        StepDef(
            "identity",
            steps.identity,
            explain=explain.explain_identity,
            description="import the PFX with -T for the client binary",
        ),
        # after the install, not before it: a Mac whose CA trust macOS refuses over SSH (11+) still gets
        # everything else, and awaits the trust (MDM profile) instead of getting nothing
        StepDef(
            "trust",
            steps.trust,
            explain=explain.explain_trust,
            description="trust root CAs (bounded), add intermediates",
            awaiting_trust_on=AWAITING_TRUST_TYPES,
        ),
        StepDef("start", steps.start, explain=explain.explain_start, description="(re)start the daemon"),
        StepDef("verify", steps.verify, phase=Phase.VERIFY, description="running and connected"),
        StepDef(
            "cleanup",
            steps.cleanup,
            always=True,
            requires="push",
            description="cache the DMG, remove the private dir",
        ),
    ),
    fact_commands=fact_commands,
    parse_facts=parse_facts,
    judge_verify=judge_verify,
    build_params=build_params,
    sample_params=sample_params,
    reads=frozenset({Read.IDENTITY}),
    device_update=device_update,
    rollback=ROLLBACK,
    trusted_cas=trusted_cas,
    stdin_inputs={"identity-import": identity_import_stdin},
)
