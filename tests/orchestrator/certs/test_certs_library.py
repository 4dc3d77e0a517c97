"""The certificate library over real certificates and PKCS#12 files made with `cryptography`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID

from orchestrator.certs import der
from orchestrator.certs.checks import CertStatus, check_client_cert
from orchestrator.certs.pfx import (
    PfxFormatError,
    PfxPasswordError,
    client_facts,
    one_time_password,
    open_pfx,
    pfx_algorithms,
    rewrap_for_macos,
)
from orchestrator.certs.x509info import CertificateLoadError, describe, load_certificates
from tests.orchestrator.certs import certmaterial as m

PW = b"s3cret-Canary-4711"


def test_pem_bundle_of_three_is_split_in_order() -> None:
    lab = m.lab()
    bundle = m.pem(lab["root"][0], lab["inter"][0], lab["other"][0])
    certs = load_certificates(bundle, "bundle.pem")
    assert [describe(c).subject_cn for c in certs] == ["Lab Root CA", "Lab Issuing CA", "Other Root CA"]


def test_der_single() -> None:
    certs = load_certificates(m.der(m.lab()["root"][0]), "root.cer")
    assert len(certs) == 1
    f = describe(certs[0])
    assert f.self_signed and f.is_ca
    assert len(f.sha1) == 40 and len(f.sha256) == 64 and f.sha256 == f.sha256.upper()


def test_pkcs7_bundle() -> None:
    lab = m.lab()
    p7 = pkcs7.serialize_certificates([lab["root"][0], lab["inter"][0]], Encoding.DER)
    assert len(load_certificates(p7, "chain.p7b")) == 2


@pytest.mark.parametrize("data", [b"garbage, not a certificate", b"", b"\x30\x03\x02\x01\x05"])
def test_garbage_is_refused_with_the_source_named(data: bytes) -> None:
    with pytest.raises(CertificateLoadError, match=r"^junk\.cer: not a certificate"):
        load_certificates(data, "junk.cer")


def test_damaged_pem_block() -> None:
    with pytest.raises(CertificateLoadError, match="damaged"):
        load_certificates(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "x.pem")


def test_describe_leaf() -> None:
    lab = m.lab()
    _, cert = m.make_leaf(m.Leaf(cn="mac-01.local", san=("mac-01.local", "alt.local")), lab["inter"])
    f = describe(cert)
    assert f.subject == "O=Lab,CN=mac-01.local"
    assert f.issuer == "O=Lab,CN=Lab Issuing CA"
    assert f.san_dns == ("mac-01.local", "alt.local")
    assert f.eku == ("clientAuth",)
    assert f.key_usage == ("digitalSignature", "keyEncipherment")
    assert not f.is_ca and not f.self_signed
    assert f.authority_key_id == describe(lab["inter"][0]).subject_key_id


def _good_pfx(password: bytes = PW, legacy: bool = True) -> bytes:
    lab = m.lab()
    key, cert = m.make_leaf(m.Leaf(), lab["inter"])
    return m.pfx(key, cert, [lab["inter"][0], lab["root"][0]], password, legacy=legacy)


def test_open_pfx_and_check_ok() -> None:
    contents = open_pfx(_good_pfx(), PW, "mac-01.pfx")
    assert contents.key is not None and contents.key_matches_cert
    assert len(contents.chain) == 2
    facts = client_facts(contents)
    assert facts is not None
    v = check_client_cert(facts, "mac-01.local", [describe(m.lab()["root"][0])], m.NOW, 30)
    assert v.status == CertStatus.OK, v.reason


def test_wrong_password_is_typed_and_never_shows_the_password() -> None:
    with pytest.raises(PfxPasswordError) as ei:
        open_pfx(_good_pfx(), b"Wrong-Canary-99", "mac-01.pfx")
    msg = str(ei.value)
    assert "mac-01.pfx: the password does not open" in msg
    assert "--password-file" in msg
    assert "Canary" not in msg and "s3cret" not in msg


def test_not_a_pkcs12_is_a_format_error() -> None:
    with pytest.raises(PfxFormatError, match=r"cert\.pem: not a PKCS#12"):
        open_pfx(m.pem(m.lab()["root"][0]), PW, "cert.pem")
    with pytest.raises(PfxFormatError):
        open_pfx(m.der(m.lab()["root"][0]), PW, "cert.der")


def test_algorithms_of_legacy_and_openssl3_style() -> None:
    legacy = pfx_algorithms(_good_pfx())
    assert legacy.mac == "sha1"
    assert legacy.key_ciphers == ("pbeWithSHAAnd3-KeyTripleDES-CBC",)
    assert legacy.cert_ciphers == ("pbeWithSHAAnd3-KeyTripleDES-CBC",)
    assert legacy.macos_compatible
    modern = pfx_algorithms(_good_pfx(legacy=False))
    assert modern.mac == "sha256"
    assert modern.key_ciphers == ("PBES2/PBKDF2-hmacWithSHA256/aes-256-cbc",)
    assert not modern.macos_compatible


def _walk_oids(buf: bytes, out: list[str]) -> None:
    """Every OBJECT IDENTIFIER in a DER tree, descending into OCTET STRINGs that hold DER."""
    for t in der.read_all(buf):
        if t.tag == der.OID:
            out.append(der.decode_oid(t.value))
        elif t.constructed:
            _walk_oids(t.value, out)
        elif t.tag == der.OCTET_STRING and t.value[:1] == b"\x30":
            try:
                _walk_oids(t.value, out)
            except der.DerError:
                pass  # ciphertext that happens to start with 0x30


def test_rewrap_uses_legacy_algorithms_and_the_new_password() -> None:
    src = open_pfx(_good_pfx(legacy=False), PW)
    assert src.key is not None and src.cert is not None
    otp = one_time_password()
    out = rewrap_for_macos(src.key, src.cert, src.chain, otp)
    oids: list[str] = []
    _walk_oids(out, oids)
    assert "1.2.840.113549.1.12.1.3" in oids  # pbeWithSHAAnd3-KeyTripleDES-CBC
    assert "1.3.14.3.2.26" in oids  # SHA-1 (the MAC)
    assert "1.2.840.113549.1.5.13" not in oids  # no PBES2
    assert "2.16.840.1.101.3.4.1.42" not in oids  # no AES-256
    again = open_pfx(out, otp)
    assert again.cert == src.cert and again.key_matches_cert and len(again.chain) == 2
    with pytest.raises(PfxPasswordError):
        open_pfx(out, PW)


def test_rewrap_refuses_an_empty_password() -> None:
    src = open_pfx(_good_pfx(), PW)
    assert src.key is not None and src.cert is not None
    with pytest.raises(ValueError, match="non-empty"):
        rewrap_for_macos(src.key, src.cert, (), b"")


def test_one_time_password_alphabet() -> None:
    pws = {one_time_password() for _ in range(50)}
    assert len(pws) == 50
    for pw in pws:
        assert len(pw) >= 24 and pw.isalnum() and pw.isascii()
    with pytest.raises(ValueError):
        one_time_password(16)


@pytest.mark.parametrize(
    ("leaf", "chain", "status"),
    [
        (m.Leaf(cn="Mac-01.local"), "full", CertStatus.NAME_MISMATCH),
        (m.Leaf(not_after=m.NOW - timedelta(days=1)), "full", CertStatus.EXPIRED),
        (m.Leaf(eku=(ExtendedKeyUsageOID.SERVER_AUTH,)), "full", CertStatus.WRONG_USAGE),
        (m.Leaf(), "none", CertStatus.CHAIN_INCOMPLETE),
        (m.Leaf(not_after=m.NOW + timedelta(days=5)), "full", CertStatus.EXPIRING),
    ],
)
def test_real_pfx_statuses(leaf: m.Leaf, chain: str, status: CertStatus) -> None:
    lab = m.lab()
    key, cert = m.make_leaf(leaf, lab["inter"])
    chain_certs = [lab["inter"][0], lab["root"][0]] if chain == "full" else []
    facts = client_facts(open_pfx(m.pfx(key, cert, chain_certs, PW), PW))
    assert facts is not None
    v = check_client_cert(facts, "mac-01.local", [describe(lab["root"][0])], m.NOW, 30)
    assert v.status == status, v.reason


def test_lab_ca_key_errors() -> None:
    from cryptography.hazmat.primitives import serialization

    from orchestrator.certs.issue import IssueError, check_ca_pair, issue_client_cert, load_ca_key

    k = m.key(1)
    enc = k.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"x"),
    )
    with pytest.raises(IssueError, match=r"ca\.key: the key is encrypted"):
        load_ca_key(enc, "ca.key")
    with pytest.raises(IssueError, match=r"ca\.key: not a PEM or DER private key"):
        load_ca_key(b"nonsense", "ca.key")
    lab = m.lab()
    _, leaf = m.make_leaf(m.Leaf(), lab["inter"])
    with pytest.raises(IssueError, match="does not belong"):
        check_ca_pair(lab["root"][0], m.key(2))
    with pytest.raises(IssueError, match=r"has no basicConstraints|is not a CA"):
        check_ca_pair(leaf, m.key(10))
    _key, cert = issue_client_cert(lab["root"][0], lab["root"][1], "Mac-Lab.local", m.NOW, days=10)
    f = describe(cert)
    assert f.subject_cn == "Mac-Lab.local" and f.san_dns == ("Mac-Lab.local",) and f.eku == ("clientAuth",)
    assert f.authority_key_id == describe(lab["root"][0]).subject_key_id
