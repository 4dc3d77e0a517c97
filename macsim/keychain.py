"""The System keychain's content: certificates, private keys with their access lists, trust settings.

Stored as JSON at the keychain's macOS path so that it survives a reboot of the virtual Mac. The `security`
tool (macsim.tools.security) mutates it; the fake 1E Client daemon (macsim.client1e) reads it.

Trust settings live in domains as on macOS: 'admin' is what `security add-trusted-cert -d` writes (and
`dump-trust-settings -d` shows), 'profile' is what an MDM configuration profile leaves, 'user' is the
per-user domain. Trust evaluation (`evaluate`) follows the chain by issuer name and signature to a
certificate trusted as a root in any domain (or to caller-given anchors, as `verify-cert -r` does).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SYSTEM_KEYCHAIN = "/Library/Keychains/System.keychain"
TRUST_RESULTS = ("trustRoot", "trustAsRoot", "deny", "unspecified")


def cert_sha1(der: bytes) -> str:
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def cert_sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest().upper()


def cert_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def public_key_hash(cert: x509.Certificate) -> str:
    """The key's identity in the keychain: SHA-1 of the SubjectPublicKeyInfo (kSecAttrApplicationLabel)."""
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
    extractable: bool = True  # False after `security import -x`

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
    `dump-trust-settings -d` shows; domain 'profile' is what an MDM configuration profile leaves.

    `constrained` is False for the plain "always trust" record (no usage constraints, what
    `add-trusted-cert` writes without -r/-p); `policies` are the -p constraints."""

    sha1: str
    result: str = "trustRoot"  # trustRoot | trustAsRoot | deny | unspecified
    domain: str = "admin"
    policies: list[str] = field(default_factory=list)
    constrained: bool = False
    label: str = ""


def cert_label(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns:
        return str(cns[0].value)
    return cert.subject.rfc4514_string()


def cert_common_name(cert: x509.Certificate) -> str | None:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else None


def cert_names(cert: x509.Certificate) -> list[str]:
    """Subject CN then SAN DNS names, as the 1E Client matches them."""
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        pass
    return names


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer and _signed_by(cert, cert)


@dataclass
class Identity:
    cert: CertItem
    key: KeyItem


@dataclass
class Evaluation:
    """The outcome of a trust evaluation. `error` is the CSSM result name macOS prints (None: trusted);
    `denied` is set when a certificate in the chain has a 'deny' trust setting (kSecTrustResultDeny)."""

    error: str | None
    chain: list[x509.Certificate]
    denied: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.denied


# Policies that check the leaf's extended key usage (Apple TP: an EKU, when present, must allow the use).
_POLICY_EKU = {
    "ssl-client": ExtendedKeyUsageOID.CLIENT_AUTH,
    "ssl-server": ExtendedKeyUsageOID.SERVER_AUTH,
    "eap-client": ExtendedKeyUsageOID.CLIENT_AUTH,
    "ipsec": None,
    "basic": None,
}


class Keychain:
    """One keychain file. All mutations persist immediately through the `save` callback."""

    def __init__(self, load: bytes | None, save: Callable[[bytes], None]) -> None:
        self._save_cb = save
        self.lock = threading.RLock()
        self.certs: list[CertItem] = []
        self.keys: list[KeyItem] = []
        self.trust: list[TrustSetting] = []
        if load:
            data = json.loads(load)
            self.certs = [CertItem(**c) for c in data.get("certs", [])]
            self.keys = [
                KeyItem(**{**k, "apps": [AppAccess(**a) for a in k.get("apps", [])]})
                for k in data.get("keys", [])
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

    def find_cert_sha256(self, sha256: str) -> CertItem | None:
        return next((c for c in self.certs if cert_sha256(c.der) == sha256.upper()), None)

    def key_for(self, cert: x509.Certificate) -> KeyItem | None:
        """The private key whose public half is this certificate's, if it is in this keychain."""
        h = public_key_hash(cert)
        return next((k for k in self.keys if k.key_hash == h), None)

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

    def trust_in(self, domain: str) -> list[TrustSetting]:
        return [t for t in self.trust if t.domain == domain]

    def is_trusted_root(self, sha1: str) -> bool:
        t = self.trust_for(sha1)
        return t is not None and t.result in ("trustRoot", "trustAsRoot")

    def chain_trusted(self, leaf: x509.Certificate, extra: list[x509.Certificate] | None = None) -> bool:
        """Does the leaf chain, by issuer name and signature, to a certificate trusted as a root here?"""
        ev = self.evaluate(leaf, intermediates=extra or [])
        return ev.error != "CSSMERR_TP_NOT_TRUSTED" and not ev.denied

    def evaluate(
        self,
        leaf: x509.Certificate,
        *,
        intermediates: Iterable[x509.Certificate] = (),
        anchors: list[x509.Certificate] | None = None,
        policy: str = "basic",
        name: str | None = None,
        now: datetime.datetime | None = None,
        use_keychain: bool = True,
    ) -> Evaluation:
        """Evaluate a leaf as macOS's trust engine would for our purposes.

        The chain is built by issuer name and signature from `intermediates` and this keychain's
        certificates (unless use_keychain is False). It is anchored by a root trust setting (trustRoot or
        trustAsRoot, any domain) or, when `anchors` is given, only by one of those certificates (as
        SecTrustSetAnchorCertificates does).
        Then validity dates, the policy's EKU, and for ssl-server the `name` are checked.
        """
        when = now or datetime.datetime.now(datetime.UTC)
        pool = (
            list(intermediates)
            + ([c.x509() for c in self.certs] if use_keychain else [])
            + list(anchors or [])
        )
        anchor_ders = {cert_der(a) for a in anchors} if anchors is not None else None
        chain = [leaf]
        cur = leaf
        anchored = False
        for _ in range(10):
            der = cert_der(cur)
            if anchor_ders is not None:
                if der in anchor_ders:
                    anchored = True
                    break
            else:
                t = self.trust_for(cert_sha1(der), ("admin", "profile", "user"))
                if t is not None and t.result == "deny":
                    return Evaluation("CSSMERR_TP_NOT_TRUSTED", chain, denied=True)
                if t is not None and t.result in ("trustRoot", "trustAsRoot"):
                    anchored = True
                    break
            if cur.subject == cur.issuer and _signed_by(cur, cur):
                break  # a root nobody trusts
            issuer = next(
                (c for c in pool if c.subject == cur.issuer and c != cur and _signed_by(cur, c)), None
            )
            if issuer is None:
                break
            chain.append(issuer)
            cur = issuer
        if not anchored:
            return Evaluation("CSSMERR_TP_NOT_TRUSTED", chain)
        for c in chain:
            if when > c.not_valid_after_utc:
                return Evaluation("CSSMERR_TP_CERT_EXPIRED", chain)
            if when < c.not_valid_before_utc:
                return Evaluation("CSSMERR_TP_CERT_NOT_VALID_YET", chain)
        wanted = _POLICY_EKU.get(policy)
        if wanted is not None:
            try:
                ekus = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
                if wanted not in ekus and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in ekus:
                    return Evaluation("CSSMERR_APPLETP_SSL_BAD_EXT_KEY_USE", chain)
            except x509.ExtensionNotFound:
                pass
        if policy == "ssl-server" and name is not None:
            if name.lower().rstrip(".") not in [n.lower() for n in cert_names(leaf)]:
                return Evaluation("CSSMERR_APPLETP_HOSTNAME_MISMATCH", chain)
        return Evaluation(None, chain)

    # ---- mutations (each persists) ----------------------------------------------------------------
    def add_certificate(self, cert: x509.Certificate) -> bool:
        """Add a certificate; False (and no change) when it is already here (errSecDuplicateItem)."""
        der = cert_der(cert)
        with self.lock:
            if self.find_cert(cert_sha1(der)) is not None:
                return False
            self.certs.append(CertItem(cert_sha1(der), base64.b64encode(der).decode(), cert_label(cert)))
            self.save()
            return True

    def add_key(self, item: KeyItem) -> bool:
        """Add a private key; False (and no change) when a key with the same public half is here."""
        with self.lock:
            if any(k.key_hash == item.key_hash for k in self.keys):
                return False
            self.keys.append(item)
            self.save()
            return True

    def delete_certificate(self, sha1: str) -> bool:
        with self.lock:
            before = len(self.certs)
            self.certs = [c for c in self.certs if c.sha1 != sha1.upper()]
            if len(self.certs) == before:
                return False
            self.save()
            return True

    def delete_key(self, key_hash: str) -> bool:
        with self.lock:
            before = len(self.keys)
            self.keys = [k for k in self.keys if k.key_hash != key_hash]
            if len(self.keys) == before:
                return False
            self.save()
            return True

    def set_trust(self, setting: TrustSetting) -> None:
        """Replace the certificate's trust settings in that domain (SecTrustSettingsSetTrustSettings)."""
        with self.lock:
            self.trust = [
                t for t in self.trust if not (t.sha1 == setting.sha1 and t.domain == setting.domain)
            ]
            self.trust.append(setting)
            self.save()

    def remove_trust(self, sha1: str, domain: str) -> bool:
        """Remove the certificate's trust settings in one domain; False when it had none there."""
        with self.lock:
            before = len(self.trust)
            self.trust = [t for t in self.trust if not (t.sha1 == sha1.upper() and t.domain == domain)]
            if len(self.trust) == before:
                return False
            self.save()
            return True

    def trust_as_profile(self, certs: Iterable[x509.Certificate]) -> None:
        """What an MDM configuration profile with certificate payloads leaves: each certificate in this
        keychain and trusted as a root in the 'profile' domain. Idempotent."""
        for cert in certs:
            self.add_certificate(cert)
            sha1 = cert_sha1(cert_der(cert))
            if self.trust_for(sha1, ("profile",)) is None:
                self.set_trust(
                    TrustSetting(sha1=sha1, result="trustRoot", domain="profile", label=cert_label(cert))
                )


def load_pem_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in PEM data (a bundle gives several). Raises ValueError when there is none."""
    return x509.load_pem_x509_certificates(data)


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
        return True
    except Exception:  # any failure means "not issued by"
        return False
