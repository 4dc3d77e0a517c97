"""Package receipts where macOS keeps them: /private/var/db/receipts/<id>.plist (+ .bom).

The plist has the real keys (PackageIdentifier, PackageVersion, InstallPrefixPath, InstallDate,
InstallProcessName, PackageFileName). The .bom holds the file list in our own JSON format (a real BOM is a
binary "BOMStore"); paths are relative to the install prefix, as `pkgutil --files` prints them.
"""

from __future__ import annotations

import datetime as dt
import json
import plistlib
from dataclasses import dataclass, field

from macsim.client1e import paths
from macsim.vfs import VirtualFS


@dataclass(frozen=True)
class BomEntry:
    path: str
    is_dir: bool
    mode: int


@dataclass(frozen=True)
class Receipt:
    pkg_id: str
    version: str
    prefix: str  # InstallPrefixPath: "Library" for the 1E pkg (no leading slash, as pkgutil prints it)
    install_time: int  # seconds since the epoch
    package_file: str
    entries: list[BomEntry] = field(default_factory=list)


def _plist_path(pkg_id: str) -> str:
    return f"{paths.RECEIPTS_DIR}/{pkg_id}.plist"


def _bom_path(pkg_id: str) -> str:
    return f"{paths.RECEIPTS_DIR}/{pkg_id}.bom"


def write_receipt(fs: VirtualFS, r: Receipt) -> None:
    """Write (or replace) the receipt; root-owned, world-readable, as installd leaves them."""
    fs.makedirs(paths.RECEIPTS_DIR)
    plist = {
        "PackageIdentifier": r.pkg_id,
        "PackageVersion": r.version,
        "InstallPrefixPath": r.prefix,
        "InstallDate": dt.datetime.fromtimestamp(r.install_time, tz=dt.UTC).replace(tzinfo=None),
        "InstallProcessName": "installer",
        "PackageFileName": r.package_file,
    }
    fs.write_bytes(_plist_path(r.pkg_id), plistlib.dumps(plist), mode=0o644)
    bom = {
        "format": "macsim-bom-1",
        "entries": [[e.path, "d" if e.is_dir else "f", e.mode] for e in r.entries],
    }
    fs.write_bytes(_bom_path(r.pkg_id), json.dumps(bom).encode(), mode=0o644)


def read_receipt(fs: VirtualFS, pkg_id: str) -> Receipt | None:
    """The receipt for pkg_id, or None when the package is not recorded."""
    p = _plist_path(pkg_id)
    if not fs.exists(p):
        return None
    plist = plistlib.loads(fs.read_bytes(p))
    when = plist.get("InstallDate")
    ts = int(when.replace(tzinfo=dt.UTC).timestamp()) if isinstance(when, dt.datetime) else 0
    entries: list[BomEntry] = []
    if fs.exists(_bom_path(pkg_id)):
        for path, kind, mode in json.loads(fs.read_bytes(_bom_path(pkg_id)))["entries"]:
            entries.append(BomEntry(path, kind == "d", int(mode)))
    return Receipt(
        pkg_id=str(plist["PackageIdentifier"]),
        version=str(plist["PackageVersion"]),
        prefix=str(plist.get("InstallPrefixPath", "/")),
        install_time=ts,
        package_file=str(plist.get("PackageFileName", "")),
        entries=entries,
    )


def list_receipts(fs: VirtualFS) -> list[str]:
    """Package ids with a receipt on the boot volume, sorted."""
    base = fs.real(paths.RECEIPTS_DIR)
    if not base.is_dir():
        return []
    return sorted(p.name.removesuffix(".plist") for p in base.iterdir() if p.name.endswith(".plist"))


def forget_receipt(fs: VirtualFS, pkg_id: str) -> bool:
    """Remove the receipt (plist and bom). False when there was none."""
    found = False
    for p in (_plist_path(pkg_id), _bom_path(pkg_id)):
        real = fs.real(p)
        if real.exists():
            real.unlink()
            fs.forget(p)
            found = True
    return found
