"""The System keychain's content: certificates, private keys with their access lists, trust settings.

Stored as JSON at the keychain's macOS path so that it survives a reboot of the virtual Mac. The `security`
tool (macsim.tools.security) mutates it; the fake 1E Client daemon (macsim.client1e) reads it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import asdict, dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID, NameOID

SYSTEM_KEYCHAIN = "/Library/Keychains/System.keychain"


def cert_sha1(der: bytes) -> str:
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def public_key_hash(cert: x509.Certificate) -> str:
    """The key's identity in the keychain: SHA-1 of the SubjectPublicKeyInfo (like kSecAttrApplicationLabel)."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha1(spki, usedforsecurity=False).hexdigest().upper()


@dataclass
class AppAccess:
    """One application allowed to use a private key without a prompt (`security import -T path`)."""

    path: str
    cdhash: str  # SHA-256 of the binary at import time: a replaced binary no longer matches


@dataclass
class KeyItem:
    key_hash: str  # public_key_hash of the matching certificate
    label: str
    key_der_b64: str  # PKCS#8 DER of the private key
    apps: list[AppAccess] = field(default_factory=list)
    allow_all: bool = False  # `security import -A`

    def allows(self, path: str, cdhash: str) -> bool:
        return self.allow_all or any(a.path == path and a.cdhash == cdhash for a in self.apps)


@dataclass
class CertItem:
    sha1: str
    der_b64: str
    label: str  # what `security find-certificate -c` matches (the subject CN, else the subject string)

    @property
    def der(self) -> bytes:
        return base64.b64decode(self.der_b64)

    def x509(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)


@dataclass
class TrustSetting:
    """A trust setting on a certificate. domain 'admin' is what `add-trusted-cert -d` writes and
    `dump-trust-settings -d` shows; domain 'profile' is what an MDM configuration profile leaves."""

    sha1: str
    result: str = "trustRoot"  # trustRoot | trustAsRoot | deny | unspecified
    domain: str = "admin"


def cert_label(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns:
        return str(cns[0].value)
    return cert.subject.rfc4514_string()


def cert_names(cert: x509.Certificate) -> list[str]:
    """Subject CN then SAN DNS names, as the 1E Client matches them."""
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        names += san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        pass
    return names


@dataclass
class Identity:
    cert: CertItem
    key: KeyItem


class Keychain:
    """One keychain file. All mutations persist immediately through the `save` callback."""

    def __init__(self, load: bytes | None, save: callable) -> None:  # type: ignore[valid-type]
        self._save_cb = save
        self.lock = threading.RLock()
        self.certs: list[CertItem] = []
        self.keys: list[KeyItem] = []
        self.trust: list[TrustSetting] = []
        if load:
            data = json.loads(load)
            self.certs = [CertItem(**c) for c in data.get("certs", [])]
            self.keys = [
                KeyItem(**{**k, "apps": [AppAccess(**a) for a in k.get("apps", [])]}) for k in data.get("keys", [])
            ]
            self.trust = [TrustSetting(**t) for t in data.get("trust", [])]

    def save(self) -> None:
        data = {
            "format": "macsim-keychain-1",
            "certs": [asdict(c) for c in self.certs],
            "keys": [asdict(k) for k in self.keys],
            "trust": [asdict(t) for t in self.trust],
        }
        self._save_cb(json.dumps(data, indent=1).encode())

    # ---- queries ----------------------------------------------------------------------------------
    def find_cert(self, sha1: str) -> CertItem | None:
        return next((c for c in self.certs if c.sha1 == sha1.upper()), None)

    def identities(self) -> list[Identity]:
        """Certificates that have their private key in this keychain."""
        by_hash = {k.key_hash: k for k in self.keys}
        out = []
        for c in self.certs:
            k = by_hash.get(public_key_hash(c.x509()))
            if k is not None:
                out.append(Identity(c, k))
        return out

    def trust_for(self, sha1: str, domains: tuple[str, ...] = ("admin", "profile")) -> TrustSetting | None:
        return next((t for t in self.trust if t.sha1 == sha1.upper() and t.domain in domains), None)

    def is_trusted_root(self, sha1: str) -> bool:
        t = self.trust_for(sha1)
        return t is not None and t.result in ("trustRoot", "trustAsRoot")

    def chain_trusted(self, leaf: x509.Certificate, extra: list[x509.Certificate] | None = None) -> bool:
        """Does the leaf chain, by issuer name and signature, to a certificate trusted as a root here?"""
        pool = [c.x509() for c in self.certs] + list(extra or [])
        cur = leaf
        for _ in range(8):
            if self.is_trusted_root(cert_sha1(cur.public_bytes(serialization.Encoding.DER))):
                return True
            issuer = next(
                (
                    c for c in pool
                    if c.subject == cur.issuer and c != cur and _signed_by(cur, c)
                ),
                None,
            )
            if issuer is None:
                return False
            cur = issuer
        return False


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
        return True
    except (ValueError, TypeError, Exception):  # noqa: BLE001 - any failure means "not issued by"
        return False
