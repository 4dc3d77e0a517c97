"""The 1E Client DMG registry: validate a UDIF image ourselves, store it content-addressed, track it in SQL.

The controller has its own UDIF reader (it must not share code with macsim). The `koly` trailer is the last
512 bytes of the image, big-endian (layout: newosxbook.com/DMG.html, jhermsmeier/node-udif's KolyBlock):
signature "koly", version 4, header size 512, flags, running data fork offset, data fork offset and length,
resource fork offset and length, segment number/count/id, data fork checksum (type 2 = CRC32, size 32 bits,
value in the first 4 of 128 bytes), XML plist offset and length, 120 reserved bytes, master checksum,
image variant, sector count, 12 reserved bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import plistlib
import re
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlmodel import Session, col, select

from inventory.userfiles import DMG, UserFileError, open_user_file, read_chunks
from orchestrator.state.models import Artifact, Run, RunStatus

KOLY = struct.Struct(">4sIIIQQQQQII16sII128sQQ120sII128sIQIII")
KOLY_SIZE = 512
UDIF_CHECKSUM_CRC32 = 2
_CHUNK = 1 << 20
# 1E ships "1e.client-macOS_v8.0.x.x.dmg" (the install reference); versions are dotted numbers.
_NAME = re.compile(r"^1e\.client-macOS_v(?P<version>\d+(?:\.\d+){1,3})\.dmg$", re.IGNORECASE)
_VERSION = re.compile(r"^\d+(?:\.\d+){1,3}$")


class ArtifactError(ValueError):
    """An artifact operation refused; the message says why and what to do."""


class ArtifactInputError(ArtifactError):
    """Bad input: no such file, no or malformed version, or not a usable disk image."""


class DmgFormatError(ArtifactInputError):
    """Not a usable UDIF disk image (truncated, corrupt, or not a DMG)."""


class ArtifactNotFound(ArtifactInputError):
    pass


class ArtifactInUse(ArtifactError):
    """A pending or running run references the artifact."""


@dataclass(frozen=True)
class KolyTrailer:
    version: int
    flags: int
    data_fork_offset: int
    data_fork_length: int
    data_checksum_type: int
    data_checksum_bits: int
    data_checksum: int
    xml_offset: int
    xml_length: int
    sector_count: int


@dataclass(frozen=True)
class DmgInfo:
    path: Path
    size: int
    sha256: str
    trailer: KolyTrailer


@contextmanager
def _open_dmg(path: Path) -> Iterator[tuple[BinaryIO, int]]:
    """The DMG opened by the bounded reader (a regular file, not a directory, FIFO or device): (file, size).
    Raises ArtifactInputError naming the path and what it is instead."""
    try:
        with open_user_file(path, DMG) as opened:
            yield opened
    except UserFileError as e:
        raise ArtifactInputError(str(e)) from None


def _read_koly(f: BinaryIO, size: int, path: Path) -> KolyTrailer:
    if size < KOLY_SIZE:
        raise DmgFormatError(f"{path.name}: {size} bytes is too short for a UDIF disk image (truncated?)")
    f.seek(size - KOLY_SIZE)
    raw = f.read(KOLY_SIZE)
    if len(raw) != KOLY_SIZE:
        raise DmgFormatError(f"{path.name}: the file shrank while it was read; try again")
    fields = KOLY.unpack(raw)
    sig, version, header_size, flags = fields[0:4]
    df_off, df_len = fields[5], fields[6]
    ck_type, ck_bits, ck = fields[12], fields[13], fields[14]
    xml_off, xml_len = fields[15], fields[16]
    sectors = fields[22]
    if sig != b"koly":
        raise DmgFormatError(
            f"{path.name}: no UDIF 'koly' trailer in the last 512 bytes: not a disk image, or truncated"
        )
    if version != 4 or header_size != KOLY_SIZE:
        raise DmgFormatError(
            f"{path.name}: UDIF trailer version {version} / header size {header_size} (expected 4 / 512)"
        )
    body = size - KOLY_SIZE
    if df_len == 0 or df_off + df_len > body:
        raise DmgFormatError(
            f"{path.name}: the data fork ({df_off}+{df_len}) lies outside the file ({size} bytes): truncated"
        )
    if xml_len == 0 or xml_off + xml_len > body:
        raise DmgFormatError(
            f"{path.name}: the XML plist ({xml_off}+{xml_len}) lies outside the file ({size} bytes): "
            "truncated"
        )
    return KolyTrailer(
        version=version,
        flags=flags,
        data_fork_offset=df_off,
        data_fork_length=df_len,
        data_checksum_type=ck_type,
        data_checksum_bits=ck_bits,
        data_checksum=struct.unpack(">I", ck[:4])[0],
        xml_offset=xml_off,
        xml_length=xml_len,
        sector_count=sectors,
    )


def validate_dmg(path: Path) -> DmgInfo:
    """Check a DMG's trailer, its XML plist and (when it has one) its data fork CRC32; compute SHA-256.

    Reads the file once in chunks. Raises DmgFormatError with a message naming what is wrong, or
    ArtifactInputError when path is not a regular file (or is over the size a DMG may have).
    """
    sha = hashlib.sha256()
    crc = 0
    pos = 0
    with _open_dmg(path) as (f, size):
        trailer = _read_koly(f, size, path)
        df_start, df_end = trailer.data_fork_offset, trailer.data_fork_offset + trailer.data_fork_length
        f.seek(0)
        for chunk in read_chunks(f, size, _CHUNK):
            sha.update(chunk)
            lo, hi = max(pos, df_start), min(pos + len(chunk), df_end)
            if lo < hi:
                crc = zlib.crc32(chunk[lo - pos : hi - pos], crc)
            pos += len(chunk)
        if pos != size:
            raise DmgFormatError(f"{path.name}: the file shrank while it was read; try again")
        f.seek(trailer.xml_offset)
        xml = f.read(trailer.xml_length)
    if trailer.data_checksum_type == UDIF_CHECKSUM_CRC32 and trailer.data_checksum_bits == 32:
        if crc != trailer.data_checksum:
            raise DmgFormatError(
                f"{path.name}: data fork CRC32 is {crc:08x} but the trailer records "
                f"{trailer.data_checksum:08x}: the image is corrupt; download it again"
            )
    try:
        plist = plistlib.loads(xml)
    except Exception as e:  # plistlib raises several types for damaged XML
        raise DmgFormatError(f"{path.name}: the UDIF XML plist does not parse ({type(e).__name__})") from None
    if not isinstance(plist, dict) or "resource-fork" not in plist:
        raise DmgFormatError(f"{path.name}: the UDIF XML plist has no resource-fork")
    return DmgInfo(path=path, size=size, sha256=sha.hexdigest(), trailer=trailer)


def dmg_file_name(version: str) -> str:
    """The file name 1E gives the DMG of version (one `version_from_filename` reads back)."""
    return f"1e.client-macOS_v{version}.dmg"


def is_version(text: str) -> bool:
    """True for a version `artifact add` accepts: dotted numbers like 8.0.1.23."""
    return bool(_VERSION.fullmatch(text))


def version_from_filename(name: str) -> str | None:
    """The version in `1e.client-macOS_v<version>.dmg`, or None."""
    m = _NAME.fullmatch(name)
    return m.group("version") if m else None


def store_path(data_dir: Path, sha256: str) -> Path:
    """Where a DMG with this SHA-256 lives: <data_dir>/artifacts/sha256/<first2>/<sha256>.dmg."""
    return data_dir / "artifacts" / "sha256" / sha256[:2] / f"{sha256}.dmg"


def _atomic_copy(src: Path, dest: Path, sha256: str) -> None:
    """Copy src to dest through a temporary file in dest's directory (fsync, read-only, rename).

    Raises DmgFormatError when the copy does not hash to sha256 (the source changed while we read it).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".incoming-", dir=dest.parent)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, _open_dmg(src) as (inp, size):
            for chunk in read_chunks(inp, size, _CHUNK):
                h.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if h.hexdigest() != sha256:
            raise DmgFormatError(f"{src.name}: the file changed while it was being stored; try again")
        os.chmod(tmp, 0o444)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_artifact(
    session: Session, data_dir: Path, src: Path, version: str | None = None
) -> tuple[Artifact, bool]:
    """Validate src, store it content-addressed and record it. Returns (row, created).

    The version comes from `version` or the file name. Raises DmgFormatError, or ArtifactError when no
    version is known, it is malformed, or another image is already stored under that version.
    """
    with _open_dmg(src):
        pass  # first of all a regular file of a DMG's size: a device or directory is not "a name problem"
    version = version or version_from_filename(src.name)
    if version is None:
        raise ArtifactInputError(
            f"{src.name}: cannot tell the version from the name (expected 1e.client-macOS_v<version>.dmg); "
            "give --version"
        )
    if not _VERSION.fullmatch(version):
        raise ArtifactInputError(f"version {version!r} is not dotted numbers like 8.0.1.23")
    info = validate_dmg(src)
    existing = session.exec(select(Artifact).where(Artifact.sha256 == info.sha256)).first()
    if existing is not None:
        if existing.version != version:
            raise ArtifactError(
                f"{src.name}: this image is already stored as version {existing.version} "
                f"(SHA-256 {info.sha256})"
            )
        dest = Path(existing.path)
        if not dest.is_file():
            _atomic_copy(src, dest, info.sha256)  # the record survived the file; put it back
        return existing, False
    clash = session.exec(select(Artifact).where(Artifact.version == version)).first()
    if clash is not None:
        raise ArtifactError(
            f"version {version} is already stored with another image (SHA-256 {clash.sha256}); "
            f"remove it first with `orchestrate artifact remove {clash.sha256}`"
        )
    dest = store_path(data_dir, info.sha256)
    if not dest.is_file():
        _atomic_copy(src, dest, info.sha256)
    row = Artifact(sha256=info.sha256, version=version, filename=src.name, size=info.size, path=str(dest))
    session.add(row)
    session.flush()
    return row, True


def list_artifacts(session: Session) -> list[Artifact]:
    rows = list(session.exec(select(Artifact)).all())
    return sorted(rows, key=lambda a: [int(p) for p in a.version.split(".")])


def find_artifact(session: Session, ref: str) -> Artifact:
    """The artifact named by version, id, full SHA-256 or a SHA-256 prefix of 8+ characters.

    Raises ArtifactNotFound (nothing, or several, match).
    """
    ref_l = ref.lower()
    rows = list(session.exec(select(Artifact)).all())
    hits = [a for a in rows if ref in (a.version, a.id) or a.sha256 == ref_l]
    if not hits and len(ref_l) >= 8:
        hits = [a for a in rows if a.sha256.startswith(ref_l)]
    if len(hits) != 1:
        what = "no artifact" if not hits else f"{len(hits)} artifacts"
        raise ArtifactNotFound(f"{what} match {ref!r}; see `orchestrate artifact list`")
    return hits[0]


def runs_using(session: Session, artifact: Artifact) -> list[Run]:
    """Pending or running runs whose parameters name the artifact (by id, SHA-256 or version key)."""
    active = session.exec(
        select(Run).where(col(Run.status).in_([RunStatus.PENDING, RunStatus.RUNNING]))
    ).all()
    out: list[Run] = []
    for run in active:
        try:
            params = json.loads(run.params_json or "{}")
        except ValueError:
            params = {}
        values = {str(v) for v in params.values()} if isinstance(params, dict) else set()
        if (
            artifact.id in values
            or artifact.sha256 in values
            or params.get("artifact_version") == artifact.version
        ):
            out.append(run)
    return out


def remove_artifact(session: Session, ref: str) -> Artifact:
    """Delete the artifact's record and its stored file. Raises ArtifactNotFound or ArtifactInUse."""
    art = find_artifact(session, ref)
    users = runs_using(session, art)
    if users:
        raise ArtifactInUse(
            f"version {art.version} is used by active run(s) {', '.join(r.id for r in users)}; "
            "wait for them to finish or cancel them"
        )
    session.delete(art)
    session.flush()
    path = Path(art.path)
    if path.exists():
        path.unlink()
    return art


def copy_out(art: Artifact, dest: Path) -> None:
    """Copy a stored artifact to dest (for tools that want a file of their own)."""
    shutil.copyfile(art.path, dest)
