"""macsim's own opener for 3DES/SHA-1 PFX files (the ones the controller sends) agrees with `cryptography`'s
loader, refuses a wrong password or a damaged MAC as macOS does, and steps aside for other shapes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    PublicFormat,
    pkcs12,
)
from cryptography.x509.oid import NameOID

from macsim.tools.pkcs12_strict import MAC_FAILED, Pkcs12Refused, load_3des, load_strict

PW = "One-Time-Pw-4711"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _cert(cn: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, signer: object) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=30)).sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    )  # fmt: skip


def _legacy(password: str) -> pkcs12.KeySerializationEncryption:
    return (
        PrivateFormat.PKCS12.encryption_builder().kdf_rounds(2048)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(hashes.SHA1())
        .build(password.encode())
    )  # fmt: skip


@pytest.fixture(scope="module")
def material() -> tuple[rsa.RSAPrivateKey, x509.Certificate, list[x509.Certificate]]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Lab Root", ca_key, ca_key)
    other = _cert("Other Root", ca_key, ca_key)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, _cert("mac-01.local", key, ca_key), [ca, other]


def _spki(key: object) -> bytes:
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


@pytest.mark.parametrize("password", [PW, "pässwört-ünicode-ß"])
def test_fast_path_agrees_with_cryptography(
    material: tuple[rsa.RSAPrivateKey, x509.Certificate, list[x509.Certificate]], password: str
) -> None:
    key, cert, chain = material
    data = pkcs12.serialize_key_and_certificates(b"id", key, cert, chain, _legacy(password))
    fast = load_3des(data, password)
    assert fast is not None
    ref_key, ref_cert, ref_chain = pkcs12.load_key_and_certificates(data, password.encode())
    assert fast.cert == ref_cert and fast.chain == list(ref_chain)
    assert isinstance(fast.key, rsa.RSAPrivateKey)
    assert fast.key.private_numbers() == key.private_numbers() and _spki(fast.key) == _spki(ref_key)
    strict = load_strict(data, password)
    assert strict.cert == cert and strict.chain == chain


@pytest.mark.parametrize("damage", ["password", "mac"])
def test_wrong_password_or_damaged_mac_is_refused_like_macos(
    material: tuple[rsa.RSAPrivateKey, x509.Certificate, list[x509.Certificate]], damage: str
) -> None:
    key, cert, chain = material
    data = pkcs12.serialize_key_and_certificates(b"id", key, cert, chain, _legacy(PW))
    password = PW
    if damage == "password":
        password = PW + "x"
    else:
        data = data[:-5] + bytes([data[-5] ^ 0x01]) + data[-4:]  # inside the MAC's salt or digest
    with pytest.raises(Pkcs12Refused, match=re.escape(MAC_FAILED)):
        load_3des(data, password)
    with pytest.raises(Pkcs12Refused):
        load_strict(data, password)


def test_other_shapes_are_left_to_the_general_loader(
    material: tuple[rsa.RSAPrivateKey, x509.Certificate, list[x509.Certificate]],
) -> None:
    key, cert, chain = material
    certs_only = pkcs12.serialize_key_and_certificates(b"id", None, None, chain, _legacy(PW))
    assert load_3des(certs_only, PW) is None  # no identity: cryptography decides what it holds
    aes = pkcs12.serialize_key_and_certificates(b"id", key, cert, chain, BestAvailableEncryption(PW.encode()))
    with pytest.raises(Pkcs12Refused):
        load_strict(aes, PW)  # PBES2/AES: macOS refuses it before any decryption
