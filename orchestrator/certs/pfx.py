"""PKCS#12 (.pfx/.p12): open one for real, read which algorithms protect it, re-wrap it for macOS.

macOS's `security import` rejects PKCS#12 files written with OpenSSL 3's defaults (PBES2/AES-256, SHA-256
MAC) with a misleading "MAC verification failed during PKCS12 import (wrong password?)"; files protected
with pbeWithSHAAnd3-KeyTripleDES-CBC and a SHA-1 MAC import. So whatever the operator gives us, what goes
to a Mac is re-wrapped with the legacy algorithms and a one-time password.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12

from orchestrator.certs import der
from orchestrator.certs.checks import ClientCertFacts
from orchestrator.certs.x509info import CertFacts, describe

# The private key types PKCS#12 can carry and `serialize_key_and_certificates` accepts.
PfxKey = (
    rsa.RSAPrivateKey
    | dsa.DSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | (ed448.Ed448PrivateKey)
)

# Algorithm OIDs, named as RFC 7292 / RFC 8018 name them.
OID_NAMES: dict[str, str] = {
    "1.2.840.113549.1.12.1.1": "pbeWithSHAAnd128BitRC4",
    "1.2.840.113549.1.12.1.2": "pbeWithSHAAnd40BitRC4",
    "1.2.840.113549.1.12.1.3": "pbeWithSHAAnd3-KeyTripleDES-CBC",
    "1.2.840.113549.1.12.1.4": "pbeWithSHAAnd2-KeyTripleDES-CBC",
    "1.2.840.113549.1.12.1.5": "pbeWithSHAAnd128BitRC2-CBC",
    "1.2.840.113549.1.12.1.6": "pbeWithSHAAnd40BitRC2-CBC",
    "1.2.840.113549.1.5.13": "PBES2",
    "1.2.840.113549.1.5.12": "PBKDF2",
    "2.16.840.1.101.3.4.1.2": "aes-128-cbc",
    "2.16.840.1.101.3.4.1.22": "aes-192-cbc",
    "2.16.840.1.101.3.4.1.42": "aes-256-cbc",
    "1.2.840.113549.2.7": "hmacWithSHA1",
    "1.2.840.113549.2.9": "hmacWithSHA256",
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_DATA = "1.2.840.113549.1.7.1"
_ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
LEGACY_CIPHER = "pbeWithSHAAnd3-KeyTripleDES-CBC"

# Letters and digits only: no quote, backslash, space or shell metacharacter, so the password can sit in a
# `security -i` line without quoting rules coming into play.
_OTP_ALPHABET = string.ascii_letters + string.digits


class PfxError(ValueError):
    """A PKCS#12 file we cannot use. Messages never contain a password."""


class PfxFormatError(PfxError):
    """The bytes are not a PKCS#12 file at all."""


class PfxPasswordError(PfxError):
    """A PKCS#12 file that does not open with the password given."""


@dataclass(frozen=True)
class PfxContents:
    """What a PKCS#12 held: the identity's key and certificate, and any further (CA) certificates."""

    key: PfxKey | None
    cert: x509.Certificate | None
    chain: tuple[x509.Certificate, ...]
    friendly_name: bytes | None = None

    @property
    def key_matches_cert(self) -> bool:
        """True when the private key is the certificate's key."""
        if self.key is None or self.cert is None:
            return False
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        return self.key.public_key().public_bytes(*spki) == self.cert.public_key().public_bytes(*spki)


@dataclass(frozen=True)
class PfxAlgorithms:
    """Which algorithms protect a PKCS#12 (readable without the password)."""

    mac: str | None  # digest of the MAC; None when the file has no MAC
    key_ciphers: tuple[str, ...]  # one per shrouded key bag; "PBES2/PBKDF2/aes-256-cbc" style for PBES2
    cert_ciphers: tuple[str, ...]  # one per encrypted SafeContents (usually the certificates)
    iterations: int = 0  # the largest key-derivation iteration count (MAC or encryption) in the file

    @property
    def macos_compatible(self) -> bool:
        """True when macOS's `security import` accepts these algorithms (legacy 3DES and a SHA-1 MAC)."""
        ciphers = self.key_ciphers + self.cert_ciphers
        legacy = {LEGACY_CIPHER, "pbeWithSHAAnd40BitRC2-CBC", "pbeWithSHAAnd128BitRC2-CBC"}
        return self.mac in (None, "sha1") and all(c in legacy for c in ciphers)

    def to_json(self) -> dict[str, object]:
        return {
            "mac": self.mac,
            "key_ciphers": list(self.key_ciphers),
            "cert_ciphers": list(self.cert_ciphers),
            "macos_compatible": self.macos_compatible,
        }


def looks_like_pkcs12(data: bytes) -> bool:
    """True when data starts like a PFX: SEQUENCE { INTEGER 3, ... } (BER indefinite length allowed)."""
    if len(data) < 8 or data[0] != der.SEQUENCE:
        return False
    first = data[1]
    pos = 2
    if first & 0x80:
        pos += first & 0x7F  # long form (0x80 alone is BER's indefinite length: nothing to skip)
    return data[pos : pos + 3] == b"\x02\x01\x03"


def open_pfx(data: bytes, password: bytes | None, source: str = "PFX") -> PfxContents:
    """Open a PKCS#12 with password (None or b"" for none).

    Raises PfxFormatError when data is not PKCS#12 and PfxPasswordError when the password does not open it;
    neither message contains the password.
    """
    if not looks_like_pkcs12(data):
        raise PfxFormatError(f"{source}: not a PKCS#12 (.pfx/.p12) file; export the identity as .pfx")
    if data[1] != 0x80:  # DER length (not BER's indefinite one): the file must hold all it announces
        try:
            der.read_tlv(data)
        except der.DerError:
            raise PfxFormatError(
                f"{source}: the PKCS#12 file is truncated ({len(data)} bytes, shorter than its own length "
                "field); copy or export it again"
            ) from None
        try:
            iterations = pfx_algorithms(data).iterations
        except PfxFormatError:
            iterations = 0  # not walkable by our reader (e.g. constructed BER): cryptography decides
        if iterations > MAX_ITERATIONS:
            raise PfxFormatError(
                f"{source}: the PKCS#12 file asks for {iterations:,} key-derivation iterations, over the "
                f"{MAX_ITERATIONS:,} we accept (opening it would take minutes or hours); export it again"
            )
    loaded = None
    for pw in [password] if password else [b"", None]:
        try:
            loaded = pkcs12.load_pkcs12(data, pw)
            break
        except ValueError:
            continue
    if loaded is None:
        raise PfxPasswordError(
            f"{source}: the password does not open this PKCS#12 file; check the password given with "
            "--password-file, --password-env or --prompt (nothing was stored for this file)"
        )
    key = loaded.key
    if key is not None and not isinstance(key, PfxKey):
        raise PfxFormatError(f"{source}: unsupported private key type {type(key).__name__}")
    cert = loaded.cert.certificate if loaded.cert is not None else None
    name = loaded.cert.friendly_name if loaded.cert is not None else None
    return PfxContents(
        key=key,
        cert=cert,
        chain=tuple(c.certificate for c in loaded.additional_certs),
        friendly_name=name,
    )


def _alg_name(alg: der.Tlv) -> str:
    """The name of an AlgorithmIdentifier; PBES2 is spelled out as PBES2/<kdf>/<cipher>."""
    parts = alg.children()
    oid = der.decode_oid(parts[0].value)
    name = OID_NAMES.get(oid, oid)
    if name == "PBES2" and len(parts) > 1:
        kdf, enc = parts[1].children()[:2]
        kdf_parts = kdf.children()
        kdf_name = OID_NAMES.get(der.decode_oid(kdf_parts[0].value), "kdf?")
        prf = ""
        params = kdf_parts[1].children() if len(kdf_parts) > 1 else []
        for p in params:
            if p.tag == der.SEQUENCE:  # the PRF AlgorithmIdentifier (default hmacWithSHA1)
                prf_oid = der.decode_oid(p.children()[0].value)
                prf = "-" + OID_NAMES.get(prf_oid, prf_oid)
        enc_name = OID_NAMES.get(der.decode_oid(enc.children()[0].value), "cipher?")
        return f"PBES2/{kdf_name}{prf}/{enc_name}"
    return name


def _alg_iterations(alg: der.Tlv) -> int:
    """The iteration count in a password-based AlgorithmIdentifier's parameters (PKCS#12 PBE: SEQUENCE
    {salt, iterations}; PBES2: the PBKDF2 parameters SEQUENCE {salt, iterationCount, ...}); 0 if none."""
    parts = alg.children()
    if len(parts) < 2 or parts[1].tag != der.SEQUENCE:
        return 0
    params = parts[1].children()
    if der.decode_oid(parts[0].value) == "1.2.840.113549.1.5.13":  # PBES2: {kdf AlgorithmIdentifier, enc}
        kdf = params[0].children()
        params = kdf[1].children() if len(kdf) > 1 and kdf[1].tag == der.SEQUENCE else []
    ints = [der.decode_int(p.value) for p in params if p.tag == der.INTEGER]
    return ints[0] if ints else 0


# Measured here: a PFX with 2,000,000 iterations takes 1.2 s to open, and one whose MAC asks for 2**31 - 1
# did not open within 30 s (minutes of CPU at this rate) — a hang. Real exports use about 2,000 (OpenSSL,
# Windows) up to a few hundred thousand.
MAX_ITERATIONS = 10_000_000


def _explicit_octets(content: der.Tlv) -> bytes:
    """The OCTET STRING inside a ContentInfo's [0] EXPLICIT content."""
    inner = content.children()[0]
    if inner.tag != der.OCTET_STRING:
        raise der.DerError("ContentInfo content is not an OCTET STRING (constructed BER is not supported)")
    return inner.value


def pfx_algorithms(data: bytes) -> PfxAlgorithms:
    """Read which algorithms protect a PKCS#12 without its password.

    Raises PfxFormatError when the structure cannot be walked (not DER PKCS#12).
    """
    try:
        pfx = der.read_tlv(data).children()
        auth_safe = pfx[1].children()
        if der.decode_oid(auth_safe[0].value) != _DATA:
            raise der.DerError("public-key integrity mode is not supported")
        mac: str | None = None
        iterations = 0
        if len(pfx) > 2:
            mac_data = pfx[2].children()
            digest_info = mac_data[0]
            mac = _alg_name(digest_info.children()[0])
            if len(mac_data) > 2 and mac_data[2].tag == der.INTEGER:
                iterations = der.decode_int(mac_data[2].value)
        key_ciphers: list[str] = []
        cert_ciphers: list[str] = []
        for ci in der.read_tlv(_explicit_octets(auth_safe[1])).children():
            parts = ci.children()
            ctype = der.decode_oid(parts[0].value)
            if ctype == _ENCRYPTED_DATA:
                enc_data = parts[1].children()[0].children()  # EncryptedData
                enc_content_info = enc_data[1].children()
                cert_ciphers.append(_alg_name(enc_content_info[1]))
                iterations = max(iterations, _alg_iterations(enc_content_info[1]))
            elif ctype == _DATA:
                for bag in der.read_tlv(_explicit_octets(parts[1])).children():
                    bag_parts = bag.children()
                    if der.decode_oid(bag_parts[0].value) == _SHROUDED_KEY_BAG:
                        epki = bag_parts[1].children()[0]
                        key_ciphers.append(_alg_name(epki.children()[0]))
                        iterations = max(iterations, _alg_iterations(epki.children()[0]))
    except (der.DerError, IndexError) as e:
        raise PfxFormatError(f"cannot read the PKCS#12 structure: {e}") from None
    return PfxAlgorithms(
        mac=mac, key_ciphers=tuple(key_ciphers), cert_ciphers=tuple(cert_ciphers), iterations=iterations
    )


def rewrap_for_macos(
    key: PfxKey,
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate],
    new_password: bytes,
    friendly_name: bytes | None = None,
) -> bytes:
    """A PKCS#12 of key, cert and chain that macOS's `security import` accepts.

    Certificates and key are encrypted with pbeWithSHAAnd3-KeyTripleDES-CBC and the MAC uses SHA-1: the
    algorithms macOS accepts (OpenSSL 3's PBES2/AES defaults are refused). Raises ValueError for an empty
    password (macOS cannot import a password-less identity over `security -i` reliably).
    """
    if not new_password:
        raise ValueError("the re-wrapped PKCS#12 needs a non-empty password")
    enc = (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2048)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())  # noqa: S303  (the MAC digest macOS accepts)
        .build(new_password)
    )
    return pkcs12.serialize_key_and_certificates(friendly_name, key, cert, list(chain) or None, enc)


def one_time_password(length: int = 32) -> bytes:
    """A random password of ASCII letters and digits (no quotes or metacharacters); at least 24 chars."""
    if length < 24:
        raise ValueError("a one-time password must be at least 24 characters")
    # One read of the system's random source, not one per character (`secrets.choice` reads it each time,
    # and each read lets other threads take the GIL); bytes >= limit are dropped so every letter is as likely.
    limit = 256 - 256 % len(_OTP_ALPHABET)
    out: list[str] = []
    while len(out) < length:
        out += [_OTP_ALPHABET[b % len(_OTP_ALPHABET)] for b in secrets.token_bytes(2 * length) if b < limit]
    return "".join(out[:length]).encode("ascii")


def identity_pem(contents: PfxContents) -> bytes:
    """The identity of an opened PFX as PEM: the key (PKCS#8, unencrypted: store it only as a secret), the
    certificate, then the chain. Kept beside the PFX at import so a run need not open the PFX again."""
    if contents.key is None or contents.cert is None:
        raise PfxError("the PKCS#12 holds no identity (key and certificate)")
    pem = serialization.Encoding.PEM
    key = contents.key.private_bytes(pem, PrivateFormat.PKCS8, serialization.NoEncryption())
    return key + b"".join(c.public_bytes(pem) for c in (contents.cert, *contents.chain))


def open_identity(data: bytes, source: str = "identity") -> PfxContents:
    """Read what `identity_pem` wrote. The RSA key check (tens of milliseconds, holding the GIL) is
    skipped: the key was checked when its PFX was opened at import, and the secret is authenticated.

    Raises PfxFormatError when data is not such a PEM."""
    start = data.find(b"-----BEGIN PRIVATE KEY-----")
    end_marker = b"-----END PRIVATE KEY-----"
    end = data.find(end_marker) + len(end_marker)
    try:
        if start < 0 or end < start + len(end_marker):
            raise ValueError("no private key")
        key = serialization.load_pem_private_key(data[start:end], None, unsafe_skip_rsa_key_validation=True)
        certs = x509.load_pem_x509_certificates(data[end:])
    except ValueError as e:
        raise PfxFormatError(f"{source}: not a stored identity ({e})") from None
    if not isinstance(key, PfxKey):
        raise PfxFormatError(f"{source}: unsupported private key type {type(key).__name__}")
    return PfxContents(key=key, cert=certs[0], chain=tuple(certs[1:]))


def identity_facts(contents: PfxContents) -> tuple[CertFacts | None, tuple[CertFacts, ...]]:
    """The facts of the identity's certificate and of the further certificates in the file."""
    leaf = describe(contents.cert) if contents.cert is not None else None
    return leaf, tuple(describe(c) for c in contents.chain)


def client_facts(contents: PfxContents) -> ClientCertFacts | None:
    """The facts the checks take, from an opened PFX; None when it holds no certificate."""
    leaf, chain = identity_facts(contents)
    if leaf is None:
        return None
    return ClientCertFacts(
        cert=leaf,
        has_private_key=contents.key is not None,
        key_matches=contents.key_matches_cert,
        chain=chain,
    )
