# ruff: noqa: F811  (pytest fixtures are imported by name; long lines are exact macOS messages)
"""Certificate artifacts: parsed back with cryptography; CN, EKU, KU, validity, chain, PKCS#12 algorithms."""

from __future__ import annotations

import datetime
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from macsim.artifacts.certs import CertArtifacts, load_cert_artifacts, write_cert_artifacts
from macsim.keychain import cert_names
from macsim.tools.pkcs12_strict import OID_PBES2, OID_SHA1, inspect_pkcs12
from tests.macsim.test_security_support import HOST, HOST_NAME, arts  # noqa: F401


def _open(a: CertArtifacts, pfx: Path) -> tuple[x509.Certificate, list[x509.Certificate]]:
    _key, cert, chain = pkcs12.load_key_and_certificates(pfx.read_bytes(), a.password_for(pfx).encode())
    assert cert is not None and _key is not None
    return cert, chain


def test_host_pfx_is_a_valid_client_identity(arts: CertArtifacts) -> None:
    cert, chain = _open(arts, arts.host_pfx[HOST])
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == HOST_NAME
    assert cert_names(cert) == [HOST_NAME, HOST_NAME]
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment and not ku.key_cert_sign
    now = datetime.datetime.now(datetime.UTC)
    assert cert.not_valid_before_utc < now < cert.not_valid_after_utc
    lab = x509.load_pem_x509_certificate(arts.lab_ca.pem.read_bytes())
    assert chain == [lab]
    cert.verify_directly_issued_by(lab)
    algos = inspect_pkcs12(arts.host_pfx[HOST].read_bytes())
    assert algos.mac_digest == OID_SHA1 and set(algos.encryption) == {"1.2.840.113549.1.12.1.3"}
    assert algos.macos_compatible
    other, _ = _open(arts, arts.host_pfx["mac-02"])
    assert cert_names(other)[0] == "MacBook-Two.example.test"  # the exact host name, case kept


def test_cas_bundle_and_files(arts: CertArtifacts) -> None:
    lab = x509.load_pem_x509_certificate(arts.lab_ca.pem.read_bytes())
    assert x509.load_der_x509_certificate(arts.lab_ca.der.read_bytes()) == lab
    switch = x509.load_der_x509_certificate(arts.switch_ca.der.read_bytes())
    assert x509.load_pem_x509_certificates(arts.ca_bundle.read_bytes()) == [lab, switch]
    for ca in (lab, switch):
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        ca.verify_directly_issued_by(ca)


def test_bad_certificates(arts: CertArtifacts) -> None:
    wrong, _ = _open(arts, arts.bad_pfx["wrong-case"])
    assert cert_names(wrong)[0] != HOST_NAME and cert_names(wrong)[0].lower() == HOST_NAME
    expired, _ = _open(arts, arts.bad_pfx["expired"])
    assert expired.not_valid_after_utc < datetime.datetime.now(datetime.UTC)
    server, _ = _open(arts, arts.bad_pfx["server-auth"])
    assert list(server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    orphan, chain = _open(arts, arts.bad_pfx["no-chain"])
    assert chain == [] and "Unknown" in orphan.issuer.rfc4514_string()
    algos = inspect_pkcs12(arts.bad_pfx["openssl3-default"].read_bytes())
    assert algos.mac_digest == "2.16.840.1.101.3.4.2.1" and OID_PBES2 in algos.encryption
    assert not algos.macos_compatible
    _open(arts, arts.bad_pfx["openssl3-default"])  # valid otherwise: cryptography opens it


def test_passwords_file_and_manifest(arts: CertArtifacts) -> None:
    assert stat.S_IMODE(arts.passwords_file.stat().st_mode) == 0o600
    passwords = json.loads(arts.passwords_file.read_text())
    assert set(passwords) == {p.name for p in [*arts.host_pfx.values(), *arts.bad_pfx.values()]}
    assert len(set(passwords.values())) == len(passwords)  # one random password per file
    manifest = arts.manifest.read_text()
    assert not any(pw in manifest for pw in passwords.values())
    back = load_cert_artifacts(arts.out)
    assert back.host_pfx == arts.host_pfx and back.bad_pfx == arts.bad_pfx and back.bad_host == HOST


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no hosts given"):
        write_cert_artifacts(tmp_path, {})
    with pytest.raises(ValueError, match="bad_host 'nope' is not one of the hosts"):
        write_cert_artifacts(tmp_path, {"a": "a.local"}, bad_host="nope")
