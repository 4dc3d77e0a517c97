"""Write fake 1E Client DMGs to disk for tests, the demo and benchmarks (good, corrupt and truncated)."""

from __future__ import annotations

from pathlib import Path

from macsim.client1e import paths
from macsim.client1e.dmg import KOLY, build_dmg, read_trailer


def write_dmg(out_dir: Path, version: str, size_bytes: int | None = None, signed: bool = True) -> Path:
    """Write `1e.client-macOS_v<version>.dmg` into out_dir (created if needed); zero-padded inside the
    data fork to exactly size_bytes when given (e.g. 5 MB / 30 MB for benchmarks; a size smaller than the
    content yields the unpadded image). signed=False gives an unsigned package inside. Returns the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / paths.dmg_name(version)
    path.write_bytes(build_dmg(version, size_bytes=size_bytes, signed=signed))
    return path


def write_misnamed_dmg(out_dir: Path, version: str, named: str, size_bytes: int | None = None) -> Path:
    """A good image of `version` saved under the name of another version (`1e.client-macOS_v<named>.dmg`),
    as a renamed download would be: its pkg keeps its own name and version inside. Returns the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / paths.dmg_name(named)
    path.write_bytes(build_dmg(version, size_bytes=size_bytes))
    return path


def write_corrupt_dmg(out_dir: Path, version: str, name: str | None = None) -> Path:
    """An image whose trailer is intact but whose volume content is damaged (bytes flipped inside the
    package): `hdiutil attach` refuses it with or without -noverify. Default name
    `1e.client-macOS_v<version>-corrupt.dmg`."""
    data = bytearray(build_dmg(version))
    t = read_trailer(bytes(data))
    # the tar's first member (the pkg) starts after one 512-byte header (plus a PAX header): hit its middle
    mid = t["data_fork_offset"] + min(t["data_fork_length"] // 2, 4096)
    for i in range(mid, mid + 64):
        data[i] ^= 0xFF
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / (name or f"{paths.PKG_PREFIX}{version}-corrupt.dmg")
    path.write_bytes(bytes(data))
    return path


def write_truncated_dmg(out_dir: Path, version: str, name: str | None = None, keep: float = 0.5) -> Path:
    """An image cut short (an interrupted download): the koly trailer is gone, so `hdiutil attach` says
    "image not recognized". Default name `1e.client-macOS_v<version>-truncated.dmg`."""
    data = build_dmg(version)
    cut = max(1, min(len(data) - KOLY.size, int(len(data) * keep)))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / (name or f"{paths.PKG_PREFIX}{version}-truncated.dmg")
    path.write_bytes(data[:cut])
    return path
