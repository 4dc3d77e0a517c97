# ruff: noqa: F811  (pytest fixtures are imported by name; long lines are exact macOS messages)
"""add-trusted-cert, remove-trusted-cert, dump-trust-settings, verify-cert; trust left by an MDM profile."""

from __future__ import annotations

from pathlib import Path

from macsim.artifacts.certs import CertArtifacts
from macsim.keychain import SYSTEM_KEYCHAIN
from tests.macsim.test_security_support import HOST, arts, make_mac, put, refused_mac, run  # noqa: F401

REFUSED = (
    "SecTrustSettingsSetTrustSettings: The authorization was denied since no user interaction was possible.\n"
)


async def test_add_trusted_cert_as_root_then_verify(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = make_mac(tmp_path)
    ca = put(mac, arts.lab_ca.pem, "/private/tmp/lab.pem", mode=0o644)
    r = await run(mac, ["security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k", SYSTEM_KEYCHAIN, ca])
    assert (r.status, r.out, r.err) == (0, "", "")
    v = await run(mac, ["security", "verify-cert", "-c", ca])
    assert (v.status, v.out) == (0, "...certificate verification successful.\n")
    d = await run(mac, ["security", "dump-trust-settings", "-d"])
    assert d.out == (
        "Number of trusted certs = 1\nCert 0: macfleet Lab Root CA\n"
        "   Number of trust settings : 1\n   Trust Setting 0:\n"
    )
    assert (await run(mac, ["security", "remove-trusted-cert", "-d", ca])).status == 0
    v = await run(mac, ["security", "verify-cert", "-c", ca])
    assert (v.status, v.err) == (1, "Cert Verify Result: CSSMERR_TP_NOT_TRUSTED\n")


async def test_trust_refused_over_ssh_still_adds_the_certificate(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = refused_mac(tmp_path)
    ca = put(mac, arts.lab_ca.pem, "/private/tmp/lab.pem", mode=0o644)
    r = await run(mac, ["security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k", SYSTEM_KEYCHAIN, ca])
    assert (r.status, r.err) == (1, REFUSED)
    assert len(mac.keychain.certs) == 1 and mac.keychain.trust == []
    d = await run(mac, ["security", "dump-trust-settings", "-d"])
    assert (d.status, d.err) == (1, "SecTrustSettingsCopyCertificates: No Trust Settings were found.\n")


async def test_non_root_and_user_domain_are_refused(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = make_mac(tmp_path)
    ca = put(mac, arts.lab_ca.pem, "/private/tmp/lab.pem", mode=0o644)
    r = await run(mac, ["security", "add-trusted-cert", "-d", ca], uid=501)
    assert (r.status, r.err) == (1, REFUSED)
    r = await run(mac, ["security", "add-trusted-cert", ca])  # user domain, even as root
    assert (r.status, r.err) == (1, REFUSED)
    r = await run(mac, ["security", "add-trusted-cert", "-d", "-k", SYSTEM_KEYCHAIN, ca], uid=501)
    assert (r.status, r.err) == (1, "SecCertificateAddToKeychain: Write permissions error.\n")


async def test_a_bundle_trusts_only_its_first_certificate(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = make_mac(tmp_path)
    bundle = put(mac, arts.ca_bundle, "/private/tmp/bundle.pem", mode=0o644)
    assert (await run(mac, ["security", "add-trusted-cert", "-d", "-k", SYSTEM_KEYCHAIN, bundle])).status == 0
    labels = [c.label for c in mac.keychain.certs]
    assert labels == ["macfleet Lab Root CA"]
    switch = put(mac, arts.switch_ca.pem, "/private/tmp/switch.pem", mode=0o644)
    v = await run(mac, ["security", "verify-cert", "-c", switch])
    assert v.err == "Cert Verify Result: CSSMERR_TP_NOT_TRUSTED\n"


async def test_profile_trust_verifies_and_shows_in_admin_dump(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = make_mac(tmp_path, trusted_cas=[str(arts.lab_ca.pem)])
    assert [t.domain for t in mac.keychain.trust] == ["profile"]
    ca = put(mac, arts.lab_ca.pem, "/private/tmp/lab.pem", mode=0o644)
    assert (await run(mac, ["security", "verify-cert", "-c", ca])).status == 0
    d = await run(mac, ["security", "dump-trust-settings", "-d"])
    assert d.out.startswith("Number of trusted certs = 1\nCert 0: macfleet Lab Root CA\n")
    again = make_mac(tmp_path, trusted_cas=[str(arts.lab_ca.pem)])  # idempotent across restarts
    assert len(again.keychain.trust) == 1 and len(again.keychain.certs) == 1


async def test_verify_cert_policies_dates_and_roots(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = make_mac(tmp_path, trusted_cas=[str(arts.lab_ca.pem)])
    # Leaf certificates from the PFX files, written out as PEM for -c.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    def leaf(pfx: Path, dest: str) -> str:
        _k, cert, _c = pkcs12.load_key_and_certificates(pfx.read_bytes(), arts.password_for(pfx).encode())
        assert cert is not None
        mac.fs.write_bytes(dest, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
        return dest

    good = leaf(arts.host_pfx[HOST], "/private/tmp/good.pem")
    assert (await run(mac, ["security", "verify-cert", "-c", good, "-p", "ssl", "-C"])).status == 0
    r = await run(mac, ["security", "verify-cert", "-c", good, "-p", "ssl"])  # server policy
    assert r.err == "Cert Verify Result: CSSMERR_APPLETP_SSL_BAD_EXT_KEY_USE\n"
    expired = leaf(arts.bad_pfx["expired"], "/private/tmp/expired.pem")
    r = await run(mac, ["security", "verify-cert", "-c", expired])
    assert (r.status, r.err) == (1, "Cert Verify Result: CSSMERR_TP_CERT_EXPIRED\n")
    no_chain = leaf(arts.bad_pfx["no-chain"], "/private/tmp/nochain.pem")
    r = await run(mac, ["security", "verify-cert", "-c", no_chain, "-q"])
    assert (r.status, r.out, r.err) == (1, "", "")
    switch = put(mac, arts.switch_ca.pem, "/private/tmp/switch.pem", mode=0o644)
    r = await run(mac, ["security", "verify-cert", "-c", good, "-r", switch])  # anchors: only the Switch CA
    assert r.err == "Cert Verify Result: CSSMERR_TP_NOT_TRUSTED\n"
    r = await run(mac, ["security", "verify-cert"])
    assert r.status == 2 and r.err.startswith("Usage: verify-cert")
    r = await run(mac, ["security", "verify-cert", "-r", switch])  # a lone root is verified as a CA
    assert (r.status, r.out) == (0, "...certificate verification successful.\n")  # it is its own anchor


async def test_trust_root_on_a_non_root_and_deny(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = make_mac(tmp_path)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    pfx = arts.host_pfx[HOST]
    _k, cert, _c = pkcs12.load_key_and_certificates(pfx.read_bytes(), arts.password_for(pfx).encode())
    assert cert is not None
    mac.fs.write_bytes("/private/tmp/leaf.pem", cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    r = await run(mac, ["security", "add-trusted-cert", "-d", "/private/tmp/leaf.pem"])
    assert (
        r.err
        == "SecTrustSettingsSetTrustSettings: One or more parameters passed to a function were not valid.\n"
    )
    ca = put(mac, arts.lab_ca.pem, "/private/tmp/lab.pem", mode=0o644)
    assert (await run(mac, ["security", "add-trusted-cert", "-d", "-r", "deny", "-p", "ssl", ca])).status == 0
    v = await run(mac, ["security", "verify-cert", "-c", ca])
    assert (v.status, v.err) == (1, "SecTrustEvaluate result: kSecTrustResultDeny\n")
    d = await run(mac, ["security", "dump-trust-settings", "-d"])
    assert (
        "      Policy OID            : SSL\n      Result Type           : kSecTrustSettingsResultDeny\n"
        in d.out
    )
    r = await run(mac, ["security", "remove-trusted-cert", "-d", "/private/tmp/leaf.pem"])
    assert (
        r.err
        == "SecTrustSettingsRemoveTrustSettings: The specified item could not be found in the keychain.\n"
    )
    r = await run(mac, ["security", "add-trusted-cert", "-d", "-r", "sometimes", ca])
    assert r.status == 2 and "Usage: add-trusted-cert" in r.err
