"""The uninstall workflow: stop the daemon, remove the client, optionally its identity and OUR CAs; verify
nothing is left.

Paths (decided once from the facts, like install's decide.py):
- with a DMG (`params.dmg`): push it, mount it, run the documented `scripts/uninstall.sh` from the image
  (it stops the client, removes the receipt's files and forgets the receipt), unmount, remove the private
  directory.
- without: the guide's pkgutil procedure, planned from facts: the receipt's file list (`pkgutil
  --only-files --files`) under its location (`pkgutil --pkg-info`) becomes one `rm -f` argv, then `pkgutil
  --forget`. A receipt path that leaves its location (`..`) refuses the step (UnsafeReceipt).
Either way a `sweep` removes what is still there outside the receipt (the known client files, the empty
client folder) — planned from the `ls -1d` fact, so a clean Mac plans nothing.
The identity goes only with `remove_identity`; a CA only when its SHA-1 is in `remove_ca_sha1s` (the CAs
OUR runs added, which the database knows) and the keychain holds it: never one that was there before.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from tasks.facts import (
    CLIENT_DIR,
    KNOWN_PATHS,
    LABEL,
    PKG_ID,
    SYSTEM_KEYCHAIN,
    ClientFacts,
    client_fact_commands,
    parse_client_facts,
    parse_find_certificate,
    parse_find_identity,
    parse_launchctl_print,
    parse_ls_d,
    parse_pkg_info,
)
from tasks.install.explain import _last_line, explain_hdiutil
from tasks.install.trust import bounded, classify_refusal
from tasks.model import (
    SAMPLE_PRIVATE_DIR,
    SAMPLE_RUN_ID,
    Command,
    DeviceUpdate,
    FailureReason,
    JobInputs,
    Outcome,
    Phase,
    Plan,
    ProbeOutput,
    Read,
    StepDef,
    Upload,
    VerifyVerdict,
    Workflow,
    checked,
    commands,
    noop,
    observed,
    refuse,
)
from tasks.refs import DmgRef
from tasks.service import explain_launchctl, stop_command

CLIENT_PARENT = posixpath.dirname(CLIENT_DIR)  # /Library/Application Support/1E (removed only when empty)
_SHA1 = re.compile(r"^[0-9A-Fa-f]{40}$")


@dataclass(frozen=True)
class UninstallParams:
    run_id: str
    private_dir: str
    dmg: DmgRef | None = None
    remove_identity: bool = False
    identity_sha1: str | None = None
    remove_ca_sha1s: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.private_dir.startswith("/") or self.private_dir.rstrip("/") in (
            "",
            "/private/tmp",
            "/tmp",
        ):
            raise ValueError(f"private_dir must be a per-run absolute directory, got {self.private_dir!r}")
        if self.remove_identity and self.identity_sha1 is None:
            raise ValueError("remove_identity needs the identity's SHA-1")
        for sha1 in (*self.remove_ca_sha1s, *([self.identity_sha1] if self.identity_sha1 else [])):
            if not _SHA1.match(sha1):
                raise ValueError(f"not a SHA-1: {sha1!r}")

    @property
    def mount_point(self) -> str:
        return f"{self.private_dir}/mnt"

    @property
    def dmg_path(self) -> str:
        assert self.dmg is not None
        return f"{self.private_dir}/{self.dmg.file_name}"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["dmg"] = {x.name: getattr(self.dmg, x.name) for x in fields(DmgRef)} if self.dmg else None
        out["remove_ca_sha1s"] = list(self.remove_ca_sha1s)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UninstallParams:
        extra = set(data) - {f.name for f in fields(cls)}
        if extra:
            raise ValueError(f"UninstallParams: unknown {sorted(extra)}")
        d = dict(data)
        d["dmg"] = DmgRef(**d["dmg"]) if d.get("dmg") else None
        d["remove_ca_sha1s"] = tuple(d.get("remove_ca_sha1s", ()))
        return cls(**d)


# ---- the shared view -------------------------------------------------------------------------------------
def _receipt_paths(facts: ClientFacts) -> tuple[str, ...] | None:
    """The receipt's files as absolute paths; None when one leaves the receipt's location."""
    base = facts.pkg_location or "/"
    out = []
    for rel in facts.pkg_files:
        path = posixpath.normpath(posixpath.join(base, rel))
        if ".." in rel.split("/") or not (path + "/").startswith(base.rstrip("/") + "/"):
            return None
        out.append(path)
    return tuple(out)


def _use_dmg(facts: ClientFacts, params: UninstallParams) -> bool:
    return params.dmg is not None and facts.mac.client_version is not None


def _identity_present(facts: ClientFacts, params: UninstallParams) -> bool:
    return (
        params.remove_identity
        and params.identity_sha1 is not None
        and facts.mac.identity(params.identity_sha1) is not None
    )


def _our_cas_present(facts: ClientFacts, params: UninstallParams) -> tuple[str, ...]:
    """The CAs to delete: listed by the run (ours) AND in the System keychain. Everything else stays."""
    held = {c.sha1.upper() for c in facts.mac.certificates}
    return tuple(s.upper() for s in params.remove_ca_sha1s if s.upper() in held)


def _leftovers(facts: ClientFacts) -> tuple[tuple[str, ...], bool]:
    """(known files present that the receipt does not list, whether the client folder is present)."""
    listed = set(_receipt_paths(facts) or ())
    files = tuple(p for p in facts.present if p != CLIENT_DIR and p not in listed)
    return files, CLIENT_DIR in facts.present


# ---- planners --------------------------------------------------------------------------------------------
def stop(facts: ClientFacts, params: UninstallParams) -> Plan:
    if not facts.mac.job.loaded:
        return noop(f"{LABEL} is not loaded")
    return commands(stop_command())


def push(facts: ClientFacts, params: UninstallParams) -> Plan:
    if not _use_dmg(facts, params):
        return noop("no DMG needed: " + ("pkgutil path" if params.dmg is None else "no receipt"))
    assert params.dmg is not None
    return commands(uploads=(Upload("dmg", params.dmg.file_name, sha256=params.dmg.sha256),))


def mount(facts: ClientFacts, params: UninstallParams) -> Plan:
    if not _use_dmg(facts, params):
        return noop("no image to mount")
    return commands(
        Command(("hdiutil", "attach", "-nobrowse", "-mountpoint", params.mount_point, params.dmg_path))
    )


def remove(facts: ClientFacts, params: UninstallParams) -> Plan:
    if facts.mac.client_version is None:
        return noop(f"no receipt for {PKG_ID}")
    if _use_dmg(facts, params):
        return commands(Command(("/bin/sh", f"{params.mount_point}/scripts/uninstall.sh")))
    paths = _receipt_paths(facts)
    if paths is None:
        return refuse(
            "UnsafeReceipt",
            f"the receipt of {PKG_ID} lists a path outside {facts.pkg_location}",
            "inspect `pkgutil --files` on the Mac; remove the client by hand",
        )
    cmds = [Command(("rm", "-f", *paths))] if paths else []
    cmds.append(Command(("pkgutil", "--forget", PKG_ID)))
    return commands(*cmds)


def unmount(facts: ClientFacts, params: UninstallParams) -> Plan:
    if not _use_dmg(facts, params):
        return noop("nothing was mounted")
    return commands(Command(("hdiutil", "detach", params.mount_point)))


def sweep(facts: ClientFacts, params: UninstallParams) -> Plan:
    files, folder = _leftovers(facts)
    if not files and not folder:
        return noop("no client file or folder is left")
    cmds = [Command(("rm", "-f", *files))] if files else []
    if folder:  # empty folders only (rmdir); another 1E product's files keep theirs
        cmds.append(Command(("rmdir", CLIENT_DIR), ok_codes=(0, 1)))
        cmds.append(Command(("rmdir", CLIENT_PARENT), ok_codes=(0, 1)))
    return commands(*cmds)


def identity(facts: ClientFacts, params: UninstallParams) -> Plan:
    if not params.remove_identity:
        return noop("the identity stays (not asked to remove it)")
    if not _identity_present(facts, params):
        return noop(f"identity {str(params.identity_sha1).upper()} is not in the System keychain")
    sha1 = str(params.identity_sha1).upper()
    return commands(Command(("security", "delete-identity", "-Z", sha1, SYSTEM_KEYCHAIN)))


def _has_admin_trust(facts: ClientFacts, sha1: str) -> bool:
    """`dump-trust-settings -d` lists the certificate (by its label, as the dump names certificates)."""
    labels = {c.label for c in facts.mac.certificates if c.sha1.upper() == sha1 and c.label}
    return any(t.name in labels for t in facts.mac.admin_trust)


def cas(facts: ClientFacts, params: UninstallParams) -> Plan:
    """A CA without a trust setting (an intermediate, or a root whose trust never came) is deleted plainly:
    nothing to authorize. One with admin trust goes with `delete-certificate -t`, which on macOS 11+ asks
    for the same confirmation as setting the trust and, refused, deletes nothing (keychain_delete.c: the
    certificate is deleted only when the trust removal succeeded): bounded by the watchdog, run last, so a
    refusal leaves exactly that CA (and any after it) whole, never a certificate without its trust or the
    reverse."""
    if not params.remove_ca_sha1s:
        return noop("no CA to remove (only CAs our runs added are ever removed)")
    ours = _our_cas_present(facts, params)
    if not ours:
        return noop("none of the CAs our runs added is in the System keychain")
    plain = [s for s in ours if not _has_admin_trust(facts, s)]
    trusted = [s for s in ours if _has_admin_trust(facts, s)]
    cmds = [Command(("security", "delete-certificate", "-Z", s, SYSTEM_KEYCHAIN)) for s in plain]
    cmds += [
        Command(bounded(("security", "delete-certificate", "-t", "-Z", s, SYSTEM_KEYCHAIN))) for s in trusted
    ]
    return commands(*cmds)


def verify(facts: ClientFacts, params: UninstallParams) -> Plan:
    return commands(*verify_commands(params))


def cleanup(facts: ClientFacts, params: UninstallParams) -> Plan:
    if not _use_dmg(facts, params):
        return noop("nothing was pushed: no private directory to remove")
    return commands(Command(("rm", "-rf", params.private_dir)))


# ---- verify ------------------------------------------------------------------------------------------------
def verify_commands(params: UninstallParams) -> tuple[Command, ...]:
    cmds = [
        Command(("pkgutil", "--pkg-info", PKG_ID), mutating=False, ok_codes=(0, 1)),
        Command(("ls", "-1d", *KNOWN_PATHS), mutating=False, ok_codes=(0, 1)),
        Command(("launchctl", "print", f"system/{LABEL}"), mutating=False, ok_codes=(0, 113)),
    ]
    if params.remove_identity:
        cmds.append(Command(("security", "find-identity", SYSTEM_KEYCHAIN), mutating=False))
    if params.remove_ca_sha1s:
        cmds.append(
            Command(
                ("security", "find-certificate", "-a", "-Z", SYSTEM_KEYCHAIN),
                mutating=False,
                ok_codes=(0, 44),
            )
        )
    return tuple(cmds)


def judge_verify(facts: ClientFacts, params: UninstallParams, outputs: list[ProbeOutput]) -> VerifyVerdict:
    """done: no receipt, none of the known files, no launchd job, and (when asked) neither the identity nor
    our CAs in the System keychain. Anything left fails at once (LeftOver): waiting will not remove it."""
    want = len(verify_commands(params))
    if len(outputs) != want:
        raise ValueError(f"uninstall verify expects {want} outputs, got {len(outputs)}")
    left: list[str] = []
    version = parse_pkg_info(outputs[0])
    if version is not None:
        left.append(f"receipt {PKG_ID} {version}")
    left += parse_ls_d(outputs[1])
    if parse_launchctl_print(outputs[2]).loaded:
        left.append(f"launchd job system/{LABEL}")
    i = 3
    if params.remove_identity:
        sha1 = str(params.identity_sha1).upper()
        if any(x.sha1 == sha1 for x in parse_find_identity(outputs[i])):
            left.append(f"identity {sha1}")
        i += 1
    if params.remove_ca_sha1s:
        held = {c.sha1 for c in parse_find_certificate(outputs[i])}
        left += [f"CA {s.upper()}" for s in params.remove_ca_sha1s if s.upper() in held]
    if left:
        return VerifyVerdict(
            False,
            FailureReason("LeftOver", "still on the Mac: " + ", ".join(left), "run the uninstall again"),
        )
    return VerifyVerdict(True, detail="no receipt, no client file, no launchd job")


# ---- explainers --------------------------------------------------------------------------------------------
def explain_remove(
    argv: tuple[str, ...], status: int | None, stdout: str, stderr: str
) -> FailureReason | None:
    text = f"{stdout}\n{stderr}"
    if "must be run as root" in text or "Permission denied" in text or "Code=513" in text:
        return FailureReason("PermissionDenied", _last_line(stdout, stderr), "the SSH user needs sudo (root)")
    if argv[:2] == ("pkgutil", "--forget"):
        return FailureReason(
            "ForgetFailed", _last_line(stdout, stderr), "pkgutil --forget com.1e.pkg.1E.Client by hand"
        )
    return FailureReason(
        "UninstallFailed", _last_line(stdout, stderr), "see the step's output; re-run the uninstall"
    )


UNINSTALL_TRUST_HINT = (
    "remove it at the Mac (Keychain Access, as an administrator) or remove the MDM profile that trusts it; "
    "run the uninstall again to verify"
)


def explain_keychain(
    argv: tuple[str, ...], status: int | None, stdout: str, stderr: str
) -> FailureReason | None:
    text = f"{stdout}\n{stderr}"
    if "-t" in argv and "delete-certificate" in argv:
        sha1 = argv[argv.index("-Z") + 1]
        refusal = classify_refusal("delete-certificate -t", status, stdout, stderr, UNINSTALL_TRUST_HINT)
        if refusal is not None:
            return FailureReason(
                refusal.error_type,
                f"CA {sha1} is still in the System keychain with its trust setting (nothing of it was "
                f"removed; CAs after it were not attempted): {refusal.message}",
                refusal.hint,
            )
    if "write permissions" in text.lower() or "UserCanceledErr" in text or "Write permissions error" in text:
        return FailureReason(
            "KeychainWriteRefused",
            _last_line(stdout, stderr),
            "run as root (sudo) to change the System keychain",
        )
    if "Unable to delete certificate matching" in text:
        return FailureReason(
            "KeychainItemMissing",
            _last_line(stdout, stderr),
            "the item went between the facts and the delete; re-run to verify",
        )
    return FailureReason("KeychainDeleteFailed", _last_line(stdout, stderr))


def build_params(job: JobInputs) -> UninstallParams:
    """The run's DMG (for uninstall.sh), the device's identity when the run removes it (and the device has
    one), and the CAs our runs trusted on it when the run removes them (never a CA that was there before)."""
    p = job.run_params
    remove_identity = bool(p.get("remove_identity")) and job.identity is not None
    sha1 = job.identity.sha1.lower() if remove_identity and job.identity is not None else None
    cas = job.cas_added if p.get("remove_ca") else ()
    return checked(
        "uninstall",
        job,
        lambda: UninstallParams(job.run_id, job.private_dir, job.dmg, remove_identity, sha1, cas),
    )


def sample_params(facts: ClientFacts | None) -> UninstallParams:
    """Removing the Mac's own first identity and CA, so the planners name every probe they use."""
    mac = facts.mac if facts is not None else None
    ident = mac.identities[0].sha1 if mac is not None and mac.identities else "0" * 40
    cas = tuple(c.sha1 for c in (mac.certificates[:1] if mac is not None else ()))
    return UninstallParams(SAMPLE_RUN_ID, SAMPLE_PRIVATE_DIR, None, True, ident, cas)


def device_update(outcome: Outcome, connected: bool | None, params: UninstallParams) -> DeviceUpdate:
    if outcome is Outcome.SUCCEEDED:
        return DeviceUpdate(installed_version=None, connected=False)
    return observed(outcome, connected, params)


UNINSTALL = Workflow(
    name="uninstall",
    steps=(
        StepDef("stop", stop, explain=explain_launchctl, description="boot the daemon out of launchd"),
        StepDef("push", push, phase=Phase.PUSH, description="the DMG (uninstall.sh path only)"),
        StepDef("mount", mount, explain=explain_hdiutil, description="hdiutil attach"),
        StepDef("remove", remove, explain=explain_remove, description="uninstall.sh, or the receipt's files"),
        StepDef(
            "unmount",
            unmount,
            always=True,
            requires="mount",
            explain=explain_hdiutil,
            description="hdiutil detach",
        ),
        StepDef("sweep", sweep, explain=explain_remove, description="client files outside the receipt"),
        StepDef("identity", identity, explain=explain_keychain, description="delete the client identity"),
        StepDef("cas", cas, explain=explain_keychain, description="delete the CAs our runs added"),
        StepDef("verify", verify, phase=Phase.VERIFY, description="nothing is left"),
        StepDef("cleanup", cleanup, always=True, requires="push", description="remove the private dir"),
    ),
    fact_commands=lambda params: client_fact_commands(),
    parse_facts=lambda params, outputs, rules: parse_client_facts(outputs, rules),
    judge_verify=judge_verify,
    build_params=build_params,
    sample_params=sample_params,
    reads=frozenset({Read.IDENTITY, Read.CAS_ADDED}),
    device_update=device_update,
)
