"""Test certificates made with `cryptography` (until/besides macsim's generated artifacts).

Every knob that a check looks at can be turned: names, validity, EKU, KU, chain, key match.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.now(UTC).replace(microsecond=0)  # the CLI judges against the real clock


@cache
def _key(i: int) -> ec.EllipticCurvePrivateKey:
    # EC keys: fast to make; a few cached ones serve every test.
    return ec.generate_private_key(ec.SECP256R1())


def key(i: int) -> ec.EllipticCurvePrivateKey:
    return _key(i)


def _ku(*, sig: bool, enc: bool, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sig,
        content_commitment=False,
        key_encipherment=enc,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(
    cn: str,
    key_no: int,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    not_after: datetime | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    k = key(key_no)
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lab")]
    )
    issuer_name = issuer[0].subject if issuer else name
    signer = issuer[1] if issuer else k
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(k.public_key())
        .serial_number(1000 + key_no)
        .not_valid_before(NOW - timedelta(days=365))
        .not_valid_after(not_after or NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ku(sig=True, enc=False, cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
    )
    if issuer:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    return b.sign(signer, hashes.SHA256()), k


@dataclass
class Leaf:
    cn: str | None = "mac-01.local"
    san: tuple[str, ...] = ()
    not_before: datetime = NOW - timedelta(days=1)
    not_after: datetime = NOW + timedelta(days=365)
    eku: tuple[x509.ObjectIdentifier, ...] | None = (ExtendedKeyUsageOID.CLIENT_AUTH,)
    sig: bool = True
    enc: bool = True
    key_no: int = 10


def make_leaf(
    spec: Leaf, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    k = key(spec.key_no)
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, spec.cn)] if spec.cn else []
    attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lab"))
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(issuer[0].subject)
        .public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
        .add_extension(_ku(sig=spec.sig, enc=spec.enc), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
    )
    if spec.san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in spec.san]), critical=False)
    if spec.eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(list(spec.eku)), critical=False)
    return k, b.sign(issuer[1], hashes.SHA256())


def pfx(
    key_: object, cert: x509.Certificate, chain: list[x509.Certificate], password: bytes, legacy: bool = True
) -> bytes:
    """A PKCS#12: legacy (3DES, SHA-1 MAC) or OpenSSL 3 style (PBES2/AES-256, SHA-256 MAC)."""
    if legacy:
        enc = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2048)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())
            .build(password)
        )
    else:
        enc = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2048)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(password)
        )
    return pkcs12.serialize_key_and_certificates(b"id", key_, cert, chain or None, enc)  # type: ignore[arg-type]


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@cache
def lab() -> dict[str, tuple[x509.Certificate, ec.EllipticCurvePrivateKey]]:
    """root → intermediate; plus an unrelated root."""
    root = make_ca("Lab Root CA", 1)
    inter = make_ca("Lab Issuing CA", 2, issuer=root)
    other = make_ca("Other Root CA", 3)
    return {"root": root, "inter": inter, "other": other}
