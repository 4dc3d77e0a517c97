"""The install workflow object: its steps, the fact script, and `identity_import_stdin`."""

from __future__ import annotations

from collections.abc import Mapping

from tasks import facts as f
from tasks.facts import BINARY, MacFacts
from tasks.install import explain, steps
from tasks.install.params import InstallParams
from tasks.install.trust import AWAITING_TRUST_TYPES
from tasks.install.verify import judge_verify
from tasks.model import Command, Phase, ProbeOutput, StepDef, Workflow

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


def parse_facts(params: InstallParams, outputs: Mapping[str, ProbeOutput]) -> MacFacts:
    f.require(outputs, fact_commands(params))
    cached = False
    if params.cache_path is not None:
        cached = f.parse_shasum(outputs["dmg_cache"]) == params.dmg.sha256.lower()
    return f.parse_mac_facts(outputs, dmg_cached=cached)


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
)
