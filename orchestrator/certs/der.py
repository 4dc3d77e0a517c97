"""A minimal DER reader: enough to walk a PKCS#12 file's structure without its password.

Why our own: `cryptography` opens a PKCS#12 only as a whole and reports a wrong password and a file that is
not PKCS#12 with the same error; walking the structure ourselves tells the two apart and shows which
algorithms protect the file (macOS rejects OpenSSL 3's defaults).
"""

from __future__ import annotations

from dataclasses import dataclass

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OCTET_STRING = 0x04
OID = 0x06
NULL = 0x05
CONTEXT_0 = 0xA0


class DerError(ValueError):
    """Bytes that are not well-formed DER; the message says where it broke."""


@dataclass(frozen=True)
class Tlv:
    """One DER element: its tag byte, its content, and where it sat in the parent buffer."""

    tag: int
    value: bytes
    end: int  # offset just after this element in the buffer it was read from

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)

    def children(self) -> list[Tlv]:
        """The elements inside a constructed element, in order; raises DerError on malformed content."""
        if not self.constructed:
            raise DerError(f"tag 0x{self.tag:02x} is not constructed")
        return read_all(self.value)


def read_tlv(buf: bytes, pos: int = 0) -> Tlv:
    """Read the element starting at pos; raises DerError when it is cut short or uses indefinite length."""
    if pos + 2 > len(buf):
        raise DerError(f"truncated element at offset {pos}")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DerError(f"multi-byte tags are not supported (offset {pos})")
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0:
            raise DerError("indefinite length is not DER")
        if n > 8 or pos + n > len(buf):
            raise DerError(f"bad length at offset {pos - 1}")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    if pos + length > len(buf):
        raise DerError(f"element at offset {pos} claims {length} bytes but only {len(buf) - pos} remain")
    return Tlv(tag=tag, value=buf[pos : pos + length], end=pos + length)


def read_all(buf: bytes) -> list[Tlv]:
    """Every element of buf, back to back; raises DerError if anything is left over or malformed."""
    out: list[Tlv] = []
    pos = 0
    while pos < len(buf):
        t = read_tlv(buf, pos)
        out.append(t)
        pos = t.end
    return out


def decode_oid(value: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's content octets."""
    if not value:
        raise DerError("empty OBJECT IDENTIFIER")
    arcs: list[int] = []
    n = 0
    for b in value:
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(n)
            n = 0
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


def decode_int(value: bytes) -> int:
    return int.from_bytes(value, "big", signed=True)
