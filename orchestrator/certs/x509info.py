"""Load X.509 certificates (PEM, DER, bundles, PKCS#7) and describe them as plain, JSON-ready facts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Short names as OpenSSL and RFC 5280 spell them; an OID we do not name is kept in dotted form.
_EKU_NAMES: dict[str, str] = {
    ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string: "clientAuth",
    ExtendedKeyUsageOID.SERVER_AUTH.dotted_string: "serverAuth",
    ExtendedKeyUsageOID.CODE_SIGNING.dotted_string: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION.dotted_string: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING.dotted_string: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING.dotted_string: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE.dotted_string: "anyExtendedKeyUsage",
}

_KU_FIELDS: tuple[tuple[str, str], ...] = (
    ("digital_signature", "digitalSignature"),
    ("content_commitment", "nonRepudiation"),
    ("key_encipherment", "keyEncipherment"),
    ("data_encipherment", "dataEncipherment"),
    ("key_agreement", "keyAgreement"),
    ("key_cert_sign", "keyCertSign"),
    ("crl_sign", "cRLSign"),
)


class CertificateLoadError(ValueError):
    """Bytes that hold no certificate we can read; the message names the source and the format tried."""


@dataclass(frozen=True)
class CertFacts:
    """What a certificate says, as plain values (the input of the pure checks; JSON round-trips).

    Fingerprints are upper-case hex without separators, as macOS `security` prints them.
    `eku`/`key_usage` are None when the extension is absent (not the same as empty).
    """

    subject: str
    issuer: str
    subject_cn: str | None
    san_dns: tuple[str, ...]
    serial: str
    not_before: datetime
    not_after: datetime
    sha1: str
    sha256: str
    eku: tuple[str, ...] | None
    key_usage: tuple[str, ...] | None
    is_ca: bool
    self_signed: bool
    subject_key_id: str | None = None
    authority_key_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes in ISO 8601)."""
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "subject_cn": self.subject_cn,
            "san_dns": list(self.san_dns),
            "serial": self.serial,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "sha1": self.sha1,
            "sha256": self.sha256,
            "eku": None if self.eku is None else list(self.eku),
            "key_usage": None if self.key_usage is None else list(self.key_usage),
            "is_ca": self.is_ca,
            "self_signed": self.self_signed,
            "subject_key_id": self.subject_key_id,
            "authority_key_id": self.authority_key_id,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CertFacts:
        """The inverse of to_json; raises KeyError naming a missing fact (a fixture must state every fact)."""
        eku = d["eku"]
        ku = d["key_usage"]
        return cls(
            subject=d["subject"],
            issuer=d["issuer"],
            subject_cn=d["subject_cn"],
            san_dns=tuple(d["san_dns"]),
            serial=d["serial"],
            not_before=datetime.fromisoformat(d["not_before"]),
            not_after=datetime.fromisoformat(d["not_after"]),
            sha1=d["sha1"],
            sha256=d["sha256"],
            eku=None if eku is None else tuple(eku),
            key_usage=None if ku is None else tuple(ku),
            is_ca=d["is_ca"],
            self_signed=d["self_signed"],
            subject_key_id=d.get("subject_key_id"),
            authority_key_id=d.get("authority_key_id"),
        )


def normalize_fingerprint(fp: str) -> str:
    """A fingerprint as we store it: upper-case hex, colons and spaces removed."""
    return fp.replace(":", "").replace(" ", "").upper()


def fingerprint(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> str:
    return cert.fingerprint(algorithm).hex().upper()


def load_certificates(data: bytes, source: str = "input") -> list[x509.Certificate]:
    """Every certificate in data: PEM (one or a bundle), DER, or PKCS#7 (PEM or DER), in file order.

    Raises CertificateLoadError when data holds no certificate; the message names `source`.
    """
    stripped = data.lstrip()
    if stripped.startswith(b"-----BEGIN"):
        if b"-----BEGIN PKCS7-----" in data or b"-----BEGIN CERTIFICATE-----" not in data:
            try:
                return list(pkcs7.load_pem_pkcs7_certificates(data))
            except ValueError as e:
                raise CertificateLoadError(
                    f"{source}: PEM holds no CERTIFICATE block and is not PKCS#7 ({e})"
                ) from None
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError as e:
            raise CertificateLoadError(f"{source}: a PEM CERTIFICATE block is damaged ({e})") from None
        return list(certs)
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        pass
    try:
        return list(pkcs7.load_der_pkcs7_certificates(data))
    except ValueError:
        pass
    raise CertificateLoadError(
        f"{source}: not a certificate (tried PEM, DER and PKCS#7); export it as Base-64 .cer or DER"
    )


def _cn(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    v = attrs[0].value
    return v if isinstance(v, str) else v.decode("utf-8", "replace")


def is_self_signed(cert: x509.Certificate) -> bool:
    """True when cert names itself as issuer and its own key verifies its signature."""
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def is_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when issuer's subject is cert's issuer and issuer's key verifies cert's signature."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def describe(cert: x509.Certificate) -> CertFacts:
    """The facts of one certificate (never raises for a certificate that loaded)."""
    ext = cert.extensions
    try:
        san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
        san_dns = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        san_dns = ()
    eku: tuple[str, ...] | None
    try:
        eku_ext = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
        eku = tuple(_EKU_NAMES.get(o.dotted_string, o.dotted_string) for o in eku_ext)
    except x509.ExtensionNotFound:
        eku = None
    ku: tuple[str, ...] | None
    try:
        ku_ext = ext.get_extension_for_class(x509.KeyUsage).value
        ku = tuple(name for attr, name in _KU_FIELDS if getattr(ku_ext, attr))
    except x509.ExtensionNotFound:
        ku = None
    try:
        is_ca = ext.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    try:
        ski: str | None = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex().upper()
    except x509.ExtensionNotFound:
        ski = None
    try:
        aki_raw = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        aki = aki_raw.hex().upper() if aki_raw else None
    except x509.ExtensionNotFound:
        aki = None
    return CertFacts(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        subject_cn=_cn(cert.subject),
        san_dns=san_dns,
        serial=format(cert.serial_number, "X"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha1=fingerprint(cert, hashes.SHA1()),  # noqa: S303  (a fingerprint, as macOS shows it)
        sha256=fingerprint(cert, hashes.SHA256()),
        eku=eku,
        key_usage=ku,
        is_ca=is_ca,
        self_signed=is_self_signed(cert),
        subject_key_id=ski,
        authority_key_id=aki,
    )


def to_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def to_pem(certs: Sequence[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
