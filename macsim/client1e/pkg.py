"""The 1E Client flat package (`1e.client-macOS_v<version>.pkg`).

Layout: a real xar header (magic `xar!`, header size 28, version 1, compressed and uncompressed TOC lengths,
checksum algorithm; big-endian, as in xar's include/xar.h) so that `file`-like checks recognise a flat
package; then our TOC (zlib-compressed JSON instead of xar's XML) and a heap holding the payload as an
uncompressed tar of paths relative to the install location (/Library). The TOC carries the heap's SHA-256,
which `installer` verifies: a damaged package fails to extract, as a real one would.
"""

from __future__ import annotations

import hashlib
import io
import json
import plistlib
import struct
import tarfile
import zlib
from dataclasses import dataclass, field, replace

from macsim.client1e import paths
from macsim.client1e.conf import DEFAULT_CONF

XAR_MAGIC = b"xar!"
_HEADER = struct.Struct(
    ">4sHHQQI"
)  # magic, header size, version, toc compressed, toc uncompressed, cksum alg
_CKSUM_SHA1 = 1

# The signing identity of the fake package. The team id is invented (it is NOT 1E's real team id).
SIGNER = "Developer ID Installer: 1E LTD (FAKE1ETEAM)"
SIGNER_CHAIN = (SIGNER, "Developer ID Certification Authority", "Apple Root CA")
TITLE = "1E Client"


class PkgError(ValueError):
    """The file is not a readable flat package (bad magic, damaged TOC or heap)."""


@dataclass(frozen=True)
class PayloadEntry:
    path: str  # relative to the install location, no leading slash
    mode: int
    data: bytes | None  # None for a directory

    @property
    def is_dir(self) -> bool:
        return self.data is None


@dataclass(frozen=True)
class Package:
    identifier: str
    version: str
    title: str
    install_location: str
    signed: bool
    signature_chain: tuple[str, ...]
    entries: list[PayloadEntry] = field(default_factory=list)

    @property
    def payload_size(self) -> int:
        """Bytes the payload occupies once installed."""
        return sum(len(e.data) for e in self.entries if e.data is not None)


def binary_content(version: str, arch: str = "x86_64") -> bytes:
    """The fake Mach-O: a script stub the shell dispatches on, plus arch and version lines. Its SHA-256
    differs per version, which is what keychain key access (`security import -T`) is bound to."""
    filler = hashlib.sha256(f"1E.Client {version} {arch}".encode()).hexdigest()
    return (
        "#!macsim-script 1E.Client\n"
        f"# 1E Client for macOS (simulated Mach-O executable {arch})\n"
        f"arch={arch}\nversion={version}\nbuild={filler[:16]}\n" + "".join(f"# {filler}\n" for _ in range(32))
    ).encode()


def script_content(name: str, version: str) -> bytes:
    """A shell script file the simulated shell runs through SCRIPTS[name] (marker on the second line)."""
    return f"#!/bin/bash\n#!macsim-script {name}\n# 1E Client {version}: {name} (simulated)\n".encode()


def launchd_plist() -> bytes:
    return plistlib.dumps(
        {
            "Label": paths.LABEL,
            "ProgramArguments": [paths.BINARY],
            "RunAtLoad": True,
            "KeepAlive": True,
            "StandardErrorPath": paths.DAEMON_LOG,
            "StandardOutPath": paths.DAEMON_LOG,
        }
    )


def payload(version: str) -> list[PayloadEntry]:
    """The files the pkg installs, relative to /Library (what `pkgutil --files` lists)."""
    client = paths.CLIENT_DIR.removeprefix("/Library/")
    return [
        PayloadEntry("Application Support", 0o755, None),
        PayloadEntry("Application Support/1E", 0o755, None),
        PayloadEntry(client, 0o755, None),
        PayloadEntry(f"{client}/1E.Client", 0o755, binary_content(version)),
        PayloadEntry(f"{client}/1E.Client.conf", 0o644, DEFAULT_CONF.encode()),
        PayloadEntry(
            f"{client}/1E.Client.updateconf.sh", 0o755, script_content("1E.Client.updateconf.sh", version)
        ),
        PayloadEntry("LaunchDaemons", 0o755, None),
        PayloadEntry(f"LaunchDaemons/{paths.LABEL}.plist", 0o644, launchd_plist()),
    ]


def build_pkg(version: str, signed: bool = True) -> bytes:
    """The bytes of `1e.client-macOS_v<version>.pkg`."""
    heap = io.BytesIO()
    with tarfile.open(fileobj=heap, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in payload(version):
            info = tarfile.TarInfo(e.path)
            info.mode = e.mode
            info.mtime = 0
            if e.data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
    heap_bytes = heap.getvalue()
    toc = {
        "format": "macsim-pkg-1",
        "identifier": paths.PKG_ID,
        "version": version,
        "title": TITLE,
        "install-location": paths.INSTALL_LOCATION,
        "heap-sha256": hashlib.sha256(heap_bytes).hexdigest(),
        "signature": {"chain": list(SIGNER_CHAIN)} if signed else None,
    }
    raw = json.dumps(toc).encode()
    comp = zlib.compress(raw)
    header = _HEADER.pack(XAR_MAGIC, _HEADER.size, 1, len(comp), len(raw), _CKSUM_SHA1)
    return header + comp + heap_bytes


def _read_toc(data: bytes) -> tuple[dict[str, object], bytes]:
    if len(data) < _HEADER.size or data[:4] != XAR_MAGIC:
        raise PkgError("not a flat package (no xar header)")
    _magic, hsize, _ver, clen, ulen, _alg = _HEADER.unpack_from(data)
    try:
        raw = zlib.decompress(data[hsize : hsize + clen])
        toc = json.loads(raw)
    except (zlib.error, ValueError) as e:
        raise PkgError(f"damaged table of contents: {e}") from None
    if len(raw) != ulen or not isinstance(toc, dict):
        raise PkgError("damaged table of contents")
    return toc, data[hsize + clen :]


def read_pkg_info(data: bytes) -> Package:
    """Identity and signature from the TOC only (what `pkgutil --check-signature` reads). Raises PkgError."""
    toc, _heap = _read_toc(data)
    sig = toc.get("signature")
    chain = tuple(sig["chain"]) if isinstance(sig, dict) else ()
    try:
        return Package(
            identifier=str(toc["identifier"]),
            version=str(toc["version"]),
            title=str(toc.get("title", "")),
            install_location=str(toc["install-location"]),
            signed=bool(chain),
            signature_chain=chain,
        )
    except KeyError as e:
        raise PkgError(f"table of contents lacks {e}") from None


def pkg_payload(data: bytes) -> bytes:
    """The package's heap (its payload archive), what `pkgutil --expand` writes as Payload."""
    return _read_toc(data)[1]


def read_pkg(data: bytes) -> Package:
    """The whole package with its payload, heap checksum verified. Raises PkgError."""
    info = read_pkg_info(data)
    toc, heap = _read_toc(data)
    if hashlib.sha256(heap).hexdigest() != toc.get("heap-sha256"):
        raise PkgError("payload checksum mismatch")
    entries: list[PayloadEntry] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(heap), mode="r:") as tar:
            for m in tar.getmembers():
                if m.name.startswith("/") or ".." in m.name.split("/"):
                    raise PkgError(f"unsafe payload path {m.name!r}")
                if m.isdir():
                    entries.append(PayloadEntry(m.name, m.mode, None))
                elif m.isfile():
                    f = tar.extractfile(m)
                    assert f is not None
                    entries.append(PayloadEntry(m.name, m.mode, f.read()))
    except tarfile.TarError as e:
        raise PkgError(f"damaged payload: {e}") from None
    return replace(info, entries=entries)
