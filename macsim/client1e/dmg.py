"""The 1E Client disk image (`1e.client-macOS_v<version>.dmg`) in UDIF form.

The file ends with a real 512-byte big-endian `koly` trailer (layout from newosxbook.com/DMG.html and
jhermsmeier/node-udif: signature, version 4, header size 512, flags, running data fork offset, data fork
offset/length, resource fork offset/length, segment number/count/id, data fork checksum (type 2 = CRC32,
32 bits), XML plist offset/length, reserved, master checksum, image variant, sector count). The data fork
carries the volume as an uncompressed tar (our choice; real images carry HFS+/APFS blocks), followed by
optional zero padding; the XML plist (written with plistlib) carries the `resource-fork`/`blkx` entry and,
under `macsim`, the volume name and each file's SHA-256. The master checksum here is CRC32 over the data
fork checksum and the XML plist (real UDIF computes it over the blkx checksums).
"""

from __future__ import annotations

import hashlib
import io
import mmap
import plistlib
import struct
import tarfile
import uuid
import zlib
from dataclasses import dataclass, field

from macsim.client1e import paths
from macsim.client1e.pkg import build_pkg, script_content

KOLY = struct.Struct(">4sIIIQQQQQII16sII128sQQ120sII128sIQIII")
assert KOLY.size == 512
KOLY_MAGIC = b"koly"
CHECKSUM_CRC32 = 2
SECTOR = 512
FORMAT = "UDZO"  # what imageinfo reports (1E ships a zlib-compressed read-only image)


class DmgError(ValueError):
    """Not a usable UDIF image. `kind` is 'not-recognized' (no/garbled trailer) or 'corrupt' (checksums)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


@dataclass(frozen=True)
class VolumeFile:
    path: str  # relative to the volume root
    mode: int
    data: bytes | None  # None for a directory


@dataclass(frozen=True)
class DiskImage:
    volume_name: str
    format: str
    sector_count: int
    data_fork_crc: int
    files: list[VolumeFile] = field(default_factory=list)


def volume_files(version: str, signed: bool = True) -> list[VolumeFile]:
    """What the 1E DMG's volume holds: the pkg and the scripts folder (install.sh, uninstall.sh; 0755)."""
    return [
        VolumeFile(paths.pkg_name(version), 0o644, build_pkg(version, signed=signed)),
        VolumeFile("scripts", 0o755, None),
        VolumeFile("scripts/install.sh", 0o755, script_content("install.sh", version)),
        VolumeFile("scripts/uninstall.sh", 0o755, script_content("uninstall.sh", version)),
    ]


def _tar(files: list[VolumeFile]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in files:
            info = tarfile.TarInfo(f.path)
            info.mode = f.mode
            info.mtime = 0
            if f.data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(f.data)
                tar.addfile(info, io.BytesIO(f.data))
    return buf.getvalue()


def _xml(volname: str, volume_length: int, files: list[VolumeFile], pad: int) -> bytes:
    """The image's XML plist: the blkx/plst resource entries and our volume metadata."""
    blkx = {"Attributes": "0x0050", "ID": "0", "Name": f"disk image ({volname} : 1)", "CFName": "disk image"}
    sums = [
        {"path": f.path, "sha256": hashlib.sha256(f.data).hexdigest()} for f in files if f.data is not None
    ]
    meta = {
        "volume-name": volname,
        "format": FORMAT,
        "volume-length": volume_length,
        "padding": pad,
        "files": sums,
    }
    plst = {"Attributes": "0x0050", "ID": "0", "Name": ""}
    return plistlib.dumps({"resource-fork": {"blkx": [blkx], "plst": [plst]}, "macsim": meta})


def build_dmg(version: str, size_bytes: int | None = None, signed: bool = True) -> bytes:
    """The bytes of a 1E DMG for version; zero-padded in the data fork up to size_bytes when given."""
    volname = paths.volume_name(version)
    files = volume_files(version, signed=signed)
    volume = _tar(files)
    pad = 0
    if size_bytes is not None:
        fixed = len(volume) + len(_xml(volname, len(volume), files, size_bytes)) + KOLY.size
        pad = max(0, size_bytes - fixed)
    xml = _xml(volname, len(volume), files, pad)
    if size_bytes is not None:
        # the padding count's digits change the XML length: settle it so the file is exactly size_bytes
        pad = max(0, size_bytes - len(volume) - len(xml) - KOLY.size)
        xml = _xml(volname, len(volume), files, pad)
        pad = max(0, size_bytes - len(volume) - len(xml) - KOLY.size)
        xml = _xml(volname, len(volume), files, pad)
    data_fork = volume + bytes(pad)
    data_crc = zlib.crc32(data_fork)
    master = zlib.crc32(struct.pack(">I", data_crc) + xml)
    sectors = (len(data_fork) + SECTOR - 1) // SECTOR
    koly = KOLY.pack(
        KOLY_MAGIC,
        4,
        KOLY.size,
        1,
        0,
        0,
        len(data_fork),
        0,
        0,
        1,
        1,
        uuid.uuid5(uuid.NAMESPACE_URL, f"1e-client-{version}").bytes,
        CHECKSUM_CRC32,
        32,
        struct.pack(">I", data_crc).ljust(128, b"\0"),
        len(data_fork),
        len(xml),
        bytes(120),
        CHECKSUM_CRC32,
        32,
        struct.pack(">I", master).ljust(128, b"\0"),
        1,
        sectors,
        0,
        0,
        0,
    )
    return data_fork + xml + koly


def read_trailer(data: bytes | mmap.mmap) -> dict[str, int]:
    """The koly fields we use. Raises DmgError('not-recognized') when there is no valid trailer."""
    if len(data) < KOLY.size:
        raise DmgError("not-recognized", "file too short for a UDIF trailer")
    f = KOLY.unpack_from(data, len(data) - KOLY.size)
    (
        magic,
        version,
        hsize,
        _flags,
        _run,
        df_off,
        df_len,
        _rf_off,
        _rf_len,
        _segn,
        _segc,
        _segid,
        dck_type,
        _dck_size,
        dck,
        xml_off,
        xml_len,
        _r1,
        mck_type,
        _mck_size,
        mck,
        variant,
        sectors,
        *_rest,
    ) = f
    body = len(data) - KOLY.size
    if magic != KOLY_MAGIC or version != 4 or hsize != KOLY.size:
        raise DmgError("not-recognized", "no koly trailer")
    if df_off + df_len > body or xml_off + xml_len > body or xml_len == 0:
        raise DmgError("not-recognized", "trailer points outside the file")
    return {
        "data_fork_offset": df_off,
        "data_fork_length": df_len,
        "xml_offset": xml_off,
        "xml_length": xml_len,
        "data_checksum_type": dck_type,
        "data_checksum": struct.unpack(">I", dck[:4])[0],
        "master_checksum_type": mck_type,
        "master_checksum": struct.unpack(">I", mck[:4])[0],
        "image_variant": variant,
        "sector_count": sectors,
    }


def read_dmg(data: bytes | mmap.mmap, verify: bool = True) -> DiskImage:
    """Parse an image. verify=True checks the data fork CRC32 and the master checksum (hdiutil's default;
    `-noverify` skips it); each file's SHA-256 is always checked on extraction, as a real image's block
    checksums are. Raises DmgError."""
    t = read_trailer(data)
    xml = data[t["xml_offset"] : t["xml_offset"] + t["xml_length"]]
    fork_at = t["data_fork_offset"]
    if verify:
        with memoryview(data) as view:  # the fork is read whole only to verify it (not with -noverify)
            crc = zlib.crc32(view[fork_at : fork_at + t["data_fork_length"]])
        if t["data_checksum_type"] != CHECKSUM_CRC32 or crc != t["data_checksum"]:
            raise DmgError("corrupt", "data fork checksum mismatch")
        if zlib.crc32(struct.pack(">I", crc) + xml) != t["master_checksum"]:
            raise DmgError("corrupt", "master checksum mismatch")
    try:
        meta = plistlib.loads(xml)["macsim"]
        volname = str(meta["volume-name"])
        vol_len = int(meta["volume-length"])
        sums = {f["path"]: f["sha256"] for f in meta["files"]}
    except Exception as e:
        raise DmgError("not-recognized", f"unreadable XML plist: {e}") from None
    files: list[VolumeFile] = []
    try:
        volume = data[fork_at : fork_at + min(vol_len, t["data_fork_length"])]
        with tarfile.open(fileobj=io.BytesIO(volume), mode="r:") as tar:
            for m in tar.getmembers():
                if m.name.startswith("/") or ".." in m.name.split("/"):
                    raise DmgError("corrupt", f"unsafe path {m.name!r}")
                if m.isdir():
                    files.append(VolumeFile(m.name, m.mode, None))
                elif m.isfile():
                    fo = tar.extractfile(m)
                    assert fo is not None
                    body = fo.read()
                    if hashlib.sha256(body).hexdigest() != sums.get(m.name):
                        raise DmgError("corrupt", f"checksum mismatch in {m.name}")
                    files.append(VolumeFile(m.name, m.mode, body))
    except tarfile.TarError as e:
        raise DmgError("corrupt", f"damaged volume: {e}") from None
    if {f.path for f in files if f.data is not None} != set(sums):
        raise DmgError("corrupt", "volume content does not match its checksums")
    return DiskImage(volname, str(meta.get("format", FORMAT)), t["sector_count"], t["data_checksum"], files)
