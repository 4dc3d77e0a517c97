"""identity_import_stdin, the explainers and the verify judge on outputs macsim and macOS print."""

from __future__ import annotations

import pytest

from tasks.install import INSTALL, CaRef, DmgRef, IdentityRef, InstallParams, identity_import_stdin
from tasks.model import ProbeOutput
from tests.tasks.verify_support import RUNNING, poll_output

PARAMS = InstallParams(
    run_id="r1",
    version="8.0.2.5",
    switch="s:4000",
    background_url="https://s/Background",
    dmg=DmgRef("8.0.2.5", "ab" * 32, 1000, "1e.client-macOS_v8.0.2.5.dmg"),
    identity=IdentityRef("AA" * 20, "bb" * 32, ("mac.local",)),
    cas=(CaRef("cc" * 32, "dd" * 20, "CN=Root", "Root", "ca-cccc.pem"),),
    private_dir="/private/tmp/macfleet-r1",
)


def test_identity_import_line() -> None:
    line = identity_import_stdin(PARAMS, "Ab3-x_9.Z")
    assert line == (
        b"import /private/tmp/macfleet-r1/client.p12 -k /Library/Keychains/System.keychain -t agg -f pkcs12 "
        b'-P Ab3-x_9.Z -T "/Library/Application Support/1E/Client/1E.Client"\n'
    )


@pytest.mark.parametrize("bad", ["", 'a"b', "a'b", "a\\b", "a b", "a\nb", "a\tb", "x" * 5000])
def test_identity_import_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        identity_import_stdin(PARAMS, bad)


def _explain(step: str, argv: tuple[str, ...], stderr: str, stdout: str = "") -> tuple[str, str] | None:
    explain = INSTALL.step(step).explain
    assert explain is not None
    r = explain(argv, 1, stdout, stderr)
    return (r.error_type, r.hint) if r else None


def test_explainers() -> None:
    trust = _explain(
        "trust",
        ("security", "add-trusted-cert"),
        "SecTrustSettingsSetTrustSettings: The authorization was denied since no user interaction "
        "was possible.\n",
    )
    assert trust is not None and trust[0] == "TrustInteractionNotAllowed" and "certs profile" in trust[1]
    pfx = _explain(
        "identity",
        ("security", "-i"),
        "security: SecKeychainItemImport: MAC verification failed during PKCS12 import (wrong password?)",
    )
    assert pfx is not None and pfx[0] == "PfxRejected" and "3DES" in pfx[1]
    mnt = _explain("mount", ("hdiutil", "attach"), "hdiutil: attach failed - image not recognized\n")
    assert mnt is not None and mnt[0] == "HdiutilFailed"
    space = _explain(
        "install",
        ("installer", "-pkg", "x", "-target", "/"),
        "installer: There is not enough space on the volume / to install",
    )
    assert space is not None and space[0] == "InsufficientSpace"
    sig = _explain(
        "install",
        ("/bin/sh", "-c", "...", "check-signature", "/x.pkg", "ABCDE12345"),
        "",
        'Package "x.pkg":\n   Status: signed by a developer certificate issued by Apple\n'
        "    1. Developer ID Installer: Other Ltd (ZZZZZ99999)\n",
    )
    assert sig is not None and sig[0] == "SignatureMismatch"


RECEIPT = "package-id: com.1e.pkg.1E.Client\nversion: 8.0.2.5\nvolume: /\nlocation: Library\n"


def _verdict(print_rc: int, print_out: str, log: str, receipt: str = RECEIPT) -> object:
    outs = [
        ProbeOutput(("pkgutil",), 0 if receipt else 1, receipt, "" if receipt else "No receipt for 'x'"),
        poll_output(print_rc, print_out, log),
    ]
    return INSTALL.judge_verify(None, PARAMS, outs)


def test_judge_verify() -> None:
    start = "t INFO    1E Client starting\n"
    done = _verdict(0, RUNNING, start + "t INFO    Connected to Switch s:4000 as mac.local\n")
    assert getattr(done, "done") is True
    err = _verdict(
        0,
        RUNNING,
        "t INFO Connected to Switch old\n" + start + "t ERROR   Cannot obtain the client "
        "certificate's private key: The user name or passphrase you entered is not correct.\n",
    )
    assert getattr(err, "failure").error_type == "NotConnected"
    assert getattr(_verdict(0, RUNNING, start), "pending") is True
    gone = _verdict(113, "", "")
    assert getattr(gone, "failure").error_type == "DaemonNotRunning"
    # the installed version must be the target, connected or not
    connected = start + "t INFO    Connected to Switch s:4000 as mac.local\n"
    older = _verdict(0, RUNNING, connected, RECEIPT.replace("8.0.2.5", "8.0.1.23"))
    assert getattr(older, "failure").error_type == "VersionMismatch"
    assert "8.0.1.23" in getattr(older, "failure").message
    assert getattr(_verdict(0, RUNNING, connected, ""), "failure").error_type == "VersionMismatch"


def test_package_version_mismatch_names_both_versions() -> None:
    from tasks.install.explain import explain_install
    from tasks.install.pkginfo import PKG_VERSION_NAME, PKG_VERSION_SCRIPT

    argv = ("/bin/sh", "-c", PKG_VERSION_SCRIPT, PKG_VERSION_NAME, "/p/mnt", "1e.client-macOS_v8.0.1.23.pkg",
            "com.1e.pkg.1E.Client", "8.0.1.23", "/p/pkginfo")
    tag = ('<pkg-info format-version="2" identifier="com.1e.pkg.1E.Client" version="8.0.2.5" '
           'install-location="/Library" auth="root"> </pkg-info> ')
    r = explain_install(argv, 1, f"macfleet-pkginfo 1e.client-macOS_v8.0.2.5.pkg\t{tag}\n", "")
    assert r is not None and r.error_type == "PackageVersionMismatch"
    assert "registered as version 8.0.1.23" in r.message
    assert "1e.client-macOS_v8.0.2.5.pkg (version 8.0.2.5)" in r.message
    other = tag.replace("com.1e.pkg.1E.Client", "com.example.other")
    r = explain_install(argv, 1, f"macfleet-pkginfo other.pkg\t{other}\n", "")
    assert r is not None and r.error_type == "PackageVersionMismatch"
    assert "no com.1e.pkg.1E.Client package, only other.pkg (com.example.other)" in r.message
    r = explain_install(argv, 1, "", "Could not open package for expansion: x.pkg")
    assert r is not None and r.error_type == "PackageVersionMismatch"
    assert "could not read the version" in r.message and "Could not open package" in r.message


# Refusals as macOS words them (tasks/install/trust.py names each message's public source); the
# watchdog's own note for a command it killed; what is not a refusal stays a failure.
TRUST_CASES = [
    (1, "SecTrustSettingsSetTrustSettings: The authorization was denied since no user interaction was "
        "possible.\n", "TrustInteractionNotAllowed"),
    (1, "SecTrustSettingsSetTrustSettings: The authorization was canceled by the user.\n", "TrustCanceled"),
    (1, "SecTrustSettingsSetTrustSettings: The authorization was denied.\n", "TrustAuthorizationDenied"),
    (1, "NO (-60005)\n", "TrustAuthorizationDenied"),
    (1, "SecTrustSettingsSetTrustSettings: errSecInternalComponent\n", "TrustRefused"),
    (137, "macfleet-watchdog: no answer within 10 s: killed\n", "TrustTimeout"),
    (1, "SecTrustSettingsSetTrustSettings: One or more parameters passed to a function were not valid.\n",
     "CaNotRoot"),
]


@pytest.mark.parametrize(("status", "stderr", "want"), TRUST_CASES)
def test_trust_refusals_are_typed(status: int, stderr: str, want: str) -> None:
    from tasks.install.trust import AWAITING_TRUST_TYPES, bounded

    explain = INSTALL.step("trust").explain
    assert explain is not None
    argv = bounded(("security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k", "/K", "/p/ca.pem"))
    r = explain(argv, status, "", stderr)
    assert r is not None and r.error_type == want
    assert (want in AWAITING_TRUST_TYPES) == (want != "CaNotRoot")
    assert want not in INSTALL.step("install").awaiting_trust_on  # only the trust step defers
