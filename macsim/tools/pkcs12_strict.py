"""PKCS#12 as macOS's `security import` accepts it: legacy PBE + SHA-1 MAC only.

macOS refuses PKCS#12 files made with OpenSSL 3's defaults (PBES2 with AES, and an HMAC-SHA-256 MAC) and
says `MAC verification failed during PKCS12 import (wrong password?)` — the same words as for a wrong password
(kube-rs/kube#691, openssl/openssl#19495). `cryptography` decrypts both kinds and does not say which
algorithms a file uses, so we walk the DER ourselves to find them, then decrypt with `cryptography`.

Structure walked (RFC 7292): PFX ::= SEQUENCE { version, authSafe ContentInfo, macData MacData OPTIONAL };
authSafe holds an AuthenticatedSafe (SEQUENCE OF ContentInfo), each `data` (SafeContents) or `encryptedData`
(its EncryptedContentInfo names the PBE algorithm); SafeContents hold SafeBags, among which
pkcs8ShroudedKeyBag carries its own EncryptedPrivateKeyInfo algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

OID_DATA = "1.2.840.113549.1.7.1"
OID_ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
OID_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
OID_SHA1 = "1.3.14.3.2.26"
OID_PBES2 = "1.2.840.113549.1.5.13"
# The PKCS#12 v1 password-based encryption family (RFC 7292 appendix C): what macOS's P12 decoder knows.
LEGACY_PBE = {
    "1.2.840.113549.1.12.1.1": "pbeWithSHAAnd128BitRC4",
    "1.2.840.113549.1.12.1.2": "pbeWithSHAAnd40BitRC4",
    "1.2.840.113549.1.12.1.3": "pbeWithSHAAnd3-KeyTripleDES-CBC",
    "1.2.840.113549.1.12.1.4": "pbeWithSHAAnd2-KeyTripleDES-CBC",
    "1.2.840.113549.1.12.1.5": "pbeWithSHAAnd128BitRC2-CBC",
    "1.2.840.113549.1.12.1.6": "pbeWithSHAAnd40BitRC2-CBC",
}


class Pkcs12FormatError(ValueError):
    """The bytes are not a PKCS#12 PFX (macOS: `Unknown format in import.`)."""


class Pkcs12Refused(ValueError):
    """macOS would not open this PFX: wrong password, or algorithms it does not support. The message is
    never the password."""


@dataclass
class Pkcs12Algorithms:
    """What protects a PFX: the MAC digest OID (None when there is no MacData) and every encryption
    algorithm OID found (on encrypted content infos and shrouded key bags)."""

    mac_digest: str | None
    encryption: list[str] = field(default_factory=list)

    @property
    def macos_compatible(self) -> bool:
        """True when macOS's `security import` can open it: SHA-1 MAC (or none) and only legacy PBE."""
        if self.mac_digest not in (None, OID_SHA1):
            return False
        return all(oid in LEGACY_PBE for oid in self.encryption)


@dataclass
class LoadedPkcs12:
    key: PrivateKeyTypes | None
    cert: x509.Certificate | None
    chain: list[x509.Certificate]


# ---- a minimal DER reader ---------------------------------------------------------------------------------


@dataclass
class _Tlv:
    tag: int
    content: bytes

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)


def _read_tlv(data: bytes, pos: int) -> tuple[_Tlv, int]:
    """One DER TLV at pos; returns it and the position after it. Raises Pkcs12FormatError."""
    if pos + 2 > len(data):
        raise Pkcs12FormatError("truncated DER")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise Pkcs12FormatError("high tag numbers are not used in PKCS#12")
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise Pkcs12FormatError("bad DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    end = pos + length
    if end > len(data):
        raise Pkcs12FormatError("DER value runs past its container")
    return _Tlv(tag, data[pos:end]), end


def _children(tlv: _Tlv) -> list[_Tlv]:
    if not tlv.constructed:
        raise Pkcs12FormatError(f"expected a constructed value, got tag {tlv.tag:#x}")
    out, pos = [], 0
    while pos < len(tlv.content):
        child, pos = _read_tlv(tlv.content, pos)
        out.append(child)
    return out


def _oid(tlv: _Tlv) -> str:
    if tlv.tag != 0x06 or not tlv.content:
        raise Pkcs12FormatError("expected an OBJECT IDENTIFIER")
    b = tlv.content
    first = b[0]
    arcs = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    val = 0
    for byte in b[1:]:
        val = (val << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(val)
            val = 0
    return ".".join(str(a) for a in arcs)


def _octets(tlv: _Tlv) -> bytes:
    """OCTET STRING content, joining a constructed (BER) one's pieces as some encoders emit."""
    if tlv.tag == 0x04:
        return tlv.content
    if tlv.tag == 0x24:
        return b"".join(_octets(c) for c in _children(tlv))
    raise Pkcs12FormatError("expected an OCTET STRING")


def _seq(tlv: _Tlv) -> list[_Tlv]:
    if tlv.tag != 0x30:
        raise Pkcs12FormatError("expected a SEQUENCE")
    return _children(tlv)


def _parse(data: bytes) -> _Tlv:
    tlv, end = _read_tlv(data, 0)
    if end != len(data):
        raise Pkcs12FormatError("trailing bytes after the PFX")
    return tlv


def inspect_pkcs12(data: bytes) -> Pkcs12Algorithms:
    """Walk a PFX and report its MAC digest and encryption algorithm OIDs.

    Raises Pkcs12FormatError when the bytes are not a PKCS#12 PFX.
    """
    pfx = _seq(_parse(data))
    if len(pfx) < 2 or pfx[0].tag != 0x02:
        raise Pkcs12FormatError("not a PFX")
    auth_safe = _seq(pfx[1])
    if len(auth_safe) != 2 or _oid(auth_safe[0]) != OID_DATA or auth_safe[1].tag != 0xA0:
        raise Pkcs12FormatError("PFX authSafe is not data (public-key integrity mode is not supported)")
    algos = Pkcs12Algorithms(mac_digest=None)
    if len(pfx) >= 3:
        mac_data = _seq(pfx[2])
        digest_info = _seq(mac_data[0])
        algos.mac_digest = _oid(_seq(digest_info[0])[0])
    content = _octets(_children(auth_safe[1])[0])
    for ci in _seq(_parse(content)):
        parts = _seq(ci)
        ctype = _oid(parts[0])
        explicit = _children(parts[1])[0] if len(parts) > 1 else None
        if ctype == OID_DATA and explicit is not None:
            _scan_safe_contents(_octets(explicit), algos)
        elif ctype == OID_ENCRYPTED_DATA and explicit is not None:
            enc_content_info = _seq(_seq(explicit)[1])
            algos.encryption.append(_oid(_seq(enc_content_info[1])[0]))
        else:
            raise Pkcs12FormatError(f"unsupported content type {ctype}")
    return algos


def _scan_safe_contents(data: bytes, algos: Pkcs12Algorithms) -> None:
    for bag in _seq(_parse(data)):
        parts = _seq(bag)
        if _oid(parts[0]) == OID_SHROUDED_KEY_BAG:
            epki = _seq(_children(parts[1])[0])
            algos.encryption.append(_oid(_seq(epki[0])[0]))


# macOS's words for both a wrong password and an unsupported algorithm (errSecPkcs12VerifyFailure).
MAC_FAILED = "MAC verification failed during PKCS12 import (wrong password?)"


def load_strict(data: bytes, password: str | None) -> LoadedPkcs12:
    """Open a PFX the way macOS does.

    Raises Pkcs12FormatError for bytes that are not a PFX, and Pkcs12Refused (message MAC_FAILED) for a wrong
    password or for PBES2/AES or a non-SHA-1 MAC, which macOS cannot verify.
    """
    algos = inspect_pkcs12(data)
    if not algos.macos_compatible:
        raise Pkcs12Refused(MAC_FAILED)
    try:
        key, cert, chain = pkcs12.load_key_and_certificates(
            data, password.encode() if password is not None else None
        )
    except ValueError:
        raise Pkcs12Refused(MAC_FAILED) from None
    return LoadedPkcs12(key=key, cert=cert, chain=list(chain))
