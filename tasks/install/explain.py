"""Explainers: a failed command's output, in operator terms (typed FailureReason)."""

from __future__ import annotations

import re

from tasks.install.pkginfo import PKG_VERSION_NAME, image_packages
from tasks.install.trust import explain_trust_output
from tasks.model import FailureReason


def _text(stdout: str, stderr: str) -> str:
    return f"{stdout}\n{stderr}"


def _last_line(stdout: str, stderr: str) -> str:
    lines = [x for x in (stderr.strip().splitlines() or stdout.strip().splitlines()) if x.strip()]
    return lines[-1].strip() if lines else "no output"


def explain_rosetta(
    argv: tuple[str, ...], status: int | None, stdout: str, stderr: str
) -> FailureReason | None:
    return FailureReason(
        "RosettaInstallFailed",
        _last_line(stdout, stderr),
        "install Rosetta 2 by hand: softwareupdate --install-rosetta --agree-to-license",
    )


def explain_trust(
    argv: tuple[str, ...], status: int | None, stdout: str, stderr: str
) -> FailureReason | None:
    """Refusals typed (tasks/install/trust.py): those in AWAITING_TRUST_TYPES leave the device awaiting."""
    return explain_trust_output(argv, status, stdout, stderr)


def explain_hdiutil(
    argv: tuple[str, ...], status: int | None, stdout: str, stderr: str
) -> FailureReason | None:
    text = _text(stdout, stderr)
    if "image not recognized" in text or "corrupt image" in text:
        return FailureReason(
            "HdiutilFailed",
            f"the disk image is damaged: {_last_line(stdout, stderr)}",
            "re-register the DMG (orchestrate artifact) and check its SHA-256",
        )
    if "hdiutil" in text:
        return FailureReason("HdiutilFailed", _last_line(stdout, stderr))
    return None


_TEAM = re.compile(r"\(([A-Z0-9]{10})\)")


def explain_install(
    argv: tuple[str, ...], status: int | None, stdout: str, stderr: str
) -> FailureReason | None:
    text = _text(stdout, stderr)
    if PKG_VERSION_NAME in argv:
        return _package_version(argv, stdout, stderr)
    if "--check-signature" in " ".join(argv) or "check-signature" in argv:
        if "no signature" in text:
            return FailureReason("SignatureMismatch", "the package is not signed", "use the DMG 1E ships")
        teams = _TEAM.findall(text)
        if teams:
            return FailureReason(
                "SignatureMismatch",
                f"the package is signed by team {teams[0]}, not {argv[-1]}",
                "check the DMG's origin, or the expected team id",
            )
        return FailureReason("SignatureMismatch", _last_line(stdout, stderr), "use the DMG 1E ships")
    if "not enough space" in text:
        return FailureReason(
            "InsufficientSpace", _last_line(stdout, stderr), "free space on the startup volume"
        )
    if "bad CPU type" in text.lower():
        return FailureReason("RosettaMissing", _last_line(stdout, stderr), "install Rosetta 2 first")
    return FailureReason("InstallFailed", _last_line(stdout, stderr), "see /var/log/install.log on the Mac")


def _package_version(argv: tuple[str, ...], stdout: str, stderr: str) -> FailureReason:
    """The version check (tasks/install/pkginfo.py) failed: say which version the image really holds.
    argv ends with: mount point, expected pkg name, identifier, expected version, scratch dir."""
    want_pkg, pkg_id, want = argv[-4], argv[-3], argv[-2]
    found = image_packages(stdout)
    hint = (
        "the DMG's name does not match its content: register the image of the version you mean "
        "(orchestrate artifact add), or deploy the version it really holds"
    )
    ours = [p for p in found if p.info.identifier == pkg_id]
    if ours:
        held = ", ".join(f"{p.file_name} (version {p.info.version or 'unknown'})" for p in ours)
        return FailureReason(
            "PackageVersionMismatch",
            f"the image was registered as version {want} but its package is {held}, "
            f"by the package's own PackageInfo; nothing was installed",
            hint,
        )
    if found:
        held = ", ".join(f"{p.file_name} ({p.info.identifier})" for p in found)
        return FailureReason(
            "PackageVersionMismatch",
            f"the image holds no {pkg_id} package, only {held}; expected {want_pkg} version {want}",
            "check that the DMG is the 1E Client's",
        )
    return FailureReason(
        "PackageVersionMismatch",
        f"could not read the version of {want_pkg} in the image (expected {want}): "
        + _last_line(stdout, stderr),
        "check that the DMG is the 1E Client's and not damaged",
    )


def explain_identity(
    argv: tuple[str, ...], status: int | None, stdout: str, stderr: str
) -> FailureReason | None:
    text = _text(stdout, stderr)
    if "MAC verification failed" in text:
        return FailureReason(
            "PfxRejected",
            "macOS rejected the PKCS#12 file: " + _last_line(stdout, stderr),
            "macOS imports only legacy PKCS#12 (3DES + SHA-1 MAC); re-wrap the PFX in the legacy format",
        )
    if "already exists" in text:
        return FailureReason(
            "IdentityDuplicate",
            _last_line(stdout, stderr),
            "delete the identity first: security delete-identity -Z SHA1",
        )
    if "SecTrustedApplicationCreateFromPath" in text:
        return FailureReason(
            "ClientBinaryMissing",
            _last_line(stdout, stderr),
            "the client must be installed before the identity is imported with -T",
        )
    return FailureReason("IdentityImportFailed", _last_line(stdout, stderr))


def explain_start(
    argv: tuple[str, ...], status: int | None, stdout: str, stderr: str
) -> FailureReason | None:
    return FailureReason(
        "StartFailed", _last_line(stdout, stderr), "check /Library/Logs/1E.Client.Daemon.log"
    )
