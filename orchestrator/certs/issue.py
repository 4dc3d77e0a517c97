"""Lab issuing: a lab CA and one client identity per Mac, with the name, EKU and KU 1E requires.

For labs and demos only; production certificates come from the organisation's CA.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from orchestrator.certs.pfx import PfxKey, rewrap_for_macos

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class IssueError(ValueError):
    """Lab issuing cannot proceed (unusable CA key or certificate); the message says why."""


def load_ca_key(data: bytes, source: str = "CA key") -> SigningKey:
    """An unencrypted PEM or DER RSA/EC private key. Raises IssueError (never showing key material)."""
    loader = (
        serialization.load_pem_private_key if b"-----BEGIN" in data else serialization.load_der_private_key
    )
    try:
        key = loader(data, password=None)
    except TypeError:
        raise IssueError(f"{source}: the key is encrypted; give an unencrypted lab CA key") from None
    except ValueError:
        raise IssueError(f"{source}: not a PEM or DER private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise IssueError(f"{source}: an RSA or EC key is needed, not {type(key).__name__}")
    return key


def check_ca_pair(ca_cert: x509.Certificate, ca_key: SigningKey) -> None:
    """Raises IssueError unless ca_key is ca_cert's key and ca_cert may sign certificates."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if ca_key.public_key().public_bytes(*spki) != ca_cert.public_key().public_bytes(*spki):
        raise IssueError("the CA key does not belong to the CA certificate")
    try:
        if not ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise IssueError("the CA certificate is not a CA (basicConstraints CA:FALSE)")
    except x509.ExtensionNotFound:
        raise IssueError("the CA certificate has no basicConstraints; it cannot be a CA") from None


def create_lab_ca(common_name: str, now: datetime, days: int = 3650) -> tuple[x509.Certificate, SigningKey]:
    """A self-signed lab root CA (RSA 2048) valid from an hour before now for days."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue_client_cert(
    ca_cert: x509.Certificate, ca_key: SigningKey, hostname: str, now: datetime, days: int = 397
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A new RSA 2048 key and a certificate with CN = SAN DNS = hostname, EKU clientAuth and KU
    digitalSignature + keyEncipherment, signed by the CA. Raises IssueError for an unusable CA pair.
    """
    check_ca_pair(ca_cert, ca_key)
    if not hostname or days < 1:
        raise IssueError("a host name and a positive number of days are needed")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(min(now + timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def issue_client_pfx(
    ca_cert: x509.Certificate,
    ca_key: SigningKey,
    hostname: str,
    password: bytes,
    now: datetime,
    days: int = 397,
    chain: Sequence[x509.Certificate] = (),
) -> bytes:
    """A PKCS#12 (legacy algorithms macOS imports) holding a new identity for hostname and the CA chain.

    chain defaults to the CA certificate alone. Raises IssueError for an unusable CA pair.
    """
    key: PfxKey
    key, cert = issue_client_cert(ca_cert, ca_key, hostname, now, days)
    return rewrap_for_macos(key, cert, list(chain) or [ca_cert], password, friendly_name=hostname.encode())
