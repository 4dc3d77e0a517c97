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

import hashlib
import hmac
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.serialization import pkcs12

OID_DATA = "1.2.840.113549.1.7.1"
OID_ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
OID_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
OID_SHA1 = "1.3.14.3.2.26"
OID_PBES2 = "1.2.840.113549.1.5.13"
OID_3DES = "1.2.840.113549.1.12.1.3"
OID_KEY_BAG = "1.2.840.113549.1.12.10.1.1"
OID_CERT_BAG = "1.2.840.113549.1.12.10.1.3"
OID_X509_CERT = "1.2.840.113549.1.9.22.1"
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
    if password is not None and algos.mac_digest == OID_SHA1 and set(algos.encryption) == {OID_3DES}:
        fast = load_3des(data, password)
        if fast is not None:
            return fast
    try:
        key, cert, chain = pkcs12.load_key_and_certificates(
            data, password.encode() if password is not None else None
        )
    except ValueError:
        raise Pkcs12Refused(MAC_FAILED) from None
    return LoadedPkcs12(key=key, cert=cert, chain=list(chain))


# ---- the files our controller sends: 3DES + SHA-1 MAC, opened without the RSA key check --------------------
# `cryptography` checks an RSA key's consistency on every load (about 40 ms of CPU, holding the GIL), and
# a fleet of simulated Macs in one process pays it once per Mac. This path does what RFC 7292 says for the
# one algorithm family the controller uses, with the same strictness (the MAC proves the password), and
# returns None for anything it does not handle so the general loader decides.


def _p12_kdf(password: bytes, salt: bytes, purpose: int, iterations: int, n: int) -> bytes:
    """RFC 7292 appendix B.2 with SHA-1 (u = 20, v = 64); password is the BMPString with its NUL."""
    v = 64
    d = bytes([purpose]) * v
    s = (salt * v)[: v * -(-len(salt) // v)]  # repeated to a multiple of v bytes
    p = (password * v)[: v * -(-len(password) // v)]
    i = bytearray(s + p)
    out = b""
    while len(out) < n:
        a = hashlib.sha1(d + i).digest()  # noqa: S324  (the KDF RFC 7292 defines)
        for _ in range(iterations - 1):
            a = hashlib.sha1(a).digest()  # noqa: S324
        out += a
        b = int.from_bytes((a * 4)[:v], "big") + 1
        for j in range(0, len(i), v):
            block = (int.from_bytes(i[j : j + v], "big") + b) % (1 << (8 * v))
            i[j : j + v] = block.to_bytes(v, "big")
    return out[:n]


def _int(tlv: _Tlv) -> int:
    if tlv.tag != 0x02:
        raise Pkcs12FormatError("expected an INTEGER")
    return int.from_bytes(tlv.content, "big", signed=True)


def _decrypt_3des(alg: _Tlv, ciphertext: bytes, password: bytes) -> bytes | None:
    """pbeWithSHAAnd3-KeyTripleDES-CBC; None when the padding is wrong."""
    parts = _seq(alg)
    if _oid(parts[0]) != OID_3DES:
        return None
    params = _seq(parts[1])
    salt, rounds = _octets(params[0]), _int(params[1])
    key = _p12_kdf(password, salt, 1, rounds, 24)
    iv = _p12_kdf(password, salt, 2, rounds, 8)
    dec = Cipher(TripleDES(key), modes.CBC(iv)).decryptor()
    unpad = padding.PKCS7(64).unpadder()
    try:
        return unpad.update(dec.update(ciphertext) + dec.finalize()) + unpad.finalize()
    except ValueError:
        return None


def load_3des(data: bytes, password: str) -> LoadedPkcs12 | None:
    """Open a 3DES/SHA-1 PFX with one identity. Raises Pkcs12Refused when the MAC does not verify (wrong
    password); None when the file is of another shape (the general loader then decides)."""
    pw = password.encode("utf-16-be") + b"\0\0"
    pfx = _seq(_parse(data))
    if len(pfx) < 3:
        return None
    content = _octets(_children(_seq(pfx[1])[1])[0])
    mac_data = _seq(pfx[2])
    digest = _octets(_seq(mac_data[0])[1])
    rounds = _int(mac_data[2]) if len(mac_data) > 2 else 1
    mac_key = _p12_kdf(pw, _octets(mac_data[1]), 3, rounds, 20)
    if not hmac.compare_digest(hmac.new(mac_key, content, "sha1").digest(), digest):
        raise Pkcs12Refused(MAC_FAILED)
    keys: list[bytes] = []
    certs: list[bytes] = []
    for ci in _seq(_parse(content)):
        parts = _seq(ci)
        explicit = _children(parts[1])[0]
        if _oid(parts[0]) == OID_DATA:
            safe = _octets(explicit)
        else:
            enc_info = _seq(_seq(explicit)[1])
            if len(enc_info) < 3 or enc_info[2].tag not in (0x80, 0xA0):
                return None
            body = enc_info[2]
            ciphertext = body.content if body.tag == 0x80 else b"".join(_octets(c) for c in _children(body))
            plain = _decrypt_3des(enc_info[1], ciphertext, pw)
            if plain is None:
                return None
            safe = plain
        for bag in _seq(_parse(safe)):
            bag_parts = _seq(bag)
            bag_id, value = _oid(bag_parts[0]), _children(bag_parts[1])[0]
            if bag_id == OID_SHROUDED_KEY_BAG:
                epki = _seq(value)
                plain = _decrypt_3des(epki[0], _octets(epki[1]), pw)
                if plain is None:
                    return None
                keys.append(plain)
            elif bag_id == OID_KEY_BAG:
                return None  # an unencrypted key: not what the controller sends
            elif bag_id == OID_CERT_BAG:
                cert_bag = _seq(value)
                if _oid(cert_bag[0]) != OID_X509_CERT:
                    return None
                certs.append(_octets(_children(cert_bag[1])[0]))
    if len(keys) != 1:
        return None
    try:
        key = serialization.load_der_private_key(keys[0], None, unsafe_skip_rsa_key_validation=True)
        loaded = [x509.load_der_x509_certificate(c) for c in certs]
    except ValueError:
        return None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    mine = key.public_key().public_bytes(*spki)
    matching = [c for c in loaded if c.public_key().public_bytes(*spki) == mine]
    if len(matching) != 1:
        return None
    return LoadedPkcs12(key=key, cert=matching[0], chain=[c for c in loaded if c is not matching[0]])
