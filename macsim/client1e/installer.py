"""`installer -pkg PATH -target /`: installs the fake 1E flat package (macsim.client1e.pkg).

Output as the real tool prints it (`installer: Package name is ...`, `installer: Installing at base path /`
or `Upgrading at base path /` when a receipt exists, `installer: The install was successful.`; seen in
owncloud/client#2948 and henri/installpkg#8). A damaged payload fails with the real "An error occurred while
extracting files from the package" text (henri/installpkg#8). Root is required ("Must be run as root to
install this package."). The free-space refusal wording is modelled on Installer's volume check; we found no
public transcript of it.

Decision on the running daemon: the package's preinstall stops (boots out) a loaded 1E Client so the binary
can be replaced, and no postinstall starts it: after `installer` alone the client is stopped, which is why
the 1E guide says options 2 and 3 need a start afterwards. The upgrade REPLACES the conf with defaults.
"""

from __future__ import annotations

import posixpath
import time

from macsim.client1e import launchd, paths, receipts
from macsim.client1e.pkg import Package, PkgError, read_pkg, read_pkg_info
from macsim.mac import VirtualMac
from macsim.shell.proc import Proc
from macsim.vfs import VfsError

USAGE = """\
Usage: installer [-help] [-dominfo] [-volinfo] [-pkginfo] [-allowUntrusted] [-dumplog]
                 [-verbose | -verboseR] [-vers] [-config] [-plist]
                 [-file <pathToFile>] [-lang <ISOLanguageCode>]
                 -pkg <pathToPackage>
                 -target <[DomainKey|MountPoint|DeviceNode|DiskIdentifier]>
"""
FLAGS = ("-verbose", "-verboseR", "-dumplog", "-allowUntrusted", "-pkginfo")
EXTRACT_FAILED = (
    "The Installer encountered an error that caused the installation to fail. Contact the software "
    "manufacturer for assistance. An error occurred while extracting files from the package "
    "\u201c{name}\u201d."
)
INSTALL_OVERHEAD = 64 * 1024  # receipts and bookkeeping beyond the payload itself


async def installer(p: Proc) -> int:
    """The installer command. Exit 0 on success, 1 on any failure or usage error."""
    pkg_arg: str | None = None
    target: str | None = None
    flags: set[str] = set()
    it = iter(p.argv[1:])
    for a in it:
        if a in ("-pkg", "-package"):
            pkg_arg = next(it, None)
            if pkg_arg is None:
                p.err(USAGE)
                return 1
        elif a == "-target":
            target = next(it, None)
            if target is None:
                p.err(USAGE)
                return 1
        elif a in FLAGS:
            flags.add(a)
        elif a == "-help":
            p.out(USAGE)
            return 0
        else:
            p.err(USAGE)
            return 1
    if "-pkginfo" in flags and pkg_arg is not None:
        return _pkginfo(p, pkg_arg, verbose="-verbose" in flags or "-verboseR" in flags)
    if pkg_arg is None or target is None or "-pkginfo" in flags:
        p.err(USAGE)
        return 1
    return await install(p, pkg_arg, target, verbose="-verbose" in flags or "-verboseR" in flags)


def _pkginfo(p: Proc, pkg_arg: str, verbose: bool) -> int:
    """`installer -pkginfo [-verbose] -pkg P` (no -target, no root needed). Terse: the package's title, one
    line (munki's installer.py takes the first line of this output as the package name). Verbose: the
    "Package information:" block with the fields and alignment of a public transcript (ask.wireshark.org
    question 9479, Mac OS X 10.7.3): Package, Status, Will Restart, Size (KB), Must Authenticate, Title,
    Description, Message. It carries NO version. Our Status and Message values for a plain component
    package are invented (the transcript shows only a metapackage and its components)."""
    loaded = _load(p, pkg_arg)
    if loaded is None:
        return 1
    data, info = loaded
    if not verbose:
        p.out(info.title)
        return 0
    try:
        size_kb = (read_pkg(data).payload_size + 1023) // 1024
    except PkgError:
        p.err(f"installer: Error the package path specified was invalid: '{pkg_arg}'.")
        return 1
    p.out("")
    p.out("Package information:")
    p.out("")
    for field, value in (
        ("Package", info.title),
        ("Status", "Installable"),
        ("Will Restart", "NO"),
        ("Size", f"{size_kb} KB"),
        ("Must Authenticate", "YES"),
        ("Title", info.title),
        ("Description", ""),
        ("Message", ""),
    ):
        p.out(f"{field:<17} : {value}")
    return 0


def _load(p: Proc, pkg_arg: str) -> tuple[bytes, Package] | None:
    path = p.path(pkg_arg)
    try:
        p.mac.fs.check_read(path, p.uid)
        data = p.mac.fs.read_bytes(path)
        return data, read_pkg_info(data)
    except (VfsError, PkgError):
        p.err(f"installer: Error the package path specified was invalid: '{pkg_arg}'.")
        return None


async def install(p: Proc, pkg_arg: str, target: str, verbose: bool = False) -> int:
    """Install the package at pkg_arg on target ("/"). Prints as installer does; returns its exit status."""
    loaded = _load(p, pkg_arg)
    if loaded is None:
        return 1
    data, info = loaded
    if target not in ("/", "LocalSystem"):
        p.err(f"installer: Error the target volume specified was invalid: '{target}'.")
        return 1
    if p.uid != 0:
        p.err("installer: Must be run as root to install this package.")
        return 1
    mac = p.mac
    p.out(f"installer: Package name is {info.title}")
    async with mac.lock:
        upgrading = receipts.read_receipt(mac.fs, info.identifier) is not None
        p.out(f"installer: {'Upgrading' if upgrading else 'Installing'} at base path /")
        try:
            pkg = read_pkg(data)
        except PkgError:
            name = posixpath.basename(pkg_arg)
            p.out(f"installer: The install failed. ({EXTRACT_FAILED.format(name=name)})")
            return 1
        if pkg.payload_size + INSTALL_OVERHEAD > mac.free_bytes():
            p.err("installer: Cannot install on volume / because it is disabled.")
            p.err(
                f"installer: There is not enough space on the volume / to install \u201c{pkg.title}\u201d "
                f"({(pkg.payload_size + INSTALL_OVERHEAD) // 1024} KB needed)."
            )
            return 1
        if verbose:
            p.out("installer:PHASE:Preparing for installation\u2026")
            p.out("installer:PHASE:Preparing the disk\u2026")
            p.out(f"installer:PHASE:Preparing {pkg.title}\u2026")
            p.out("installer:PHASE:Waiting for other installations to complete\u2026")
            p.out("installer:PHASE:Configuring the installation\u2026")
            p.out("installer:STATUS:")
            p.out("installer:%10.0")
        # preinstall: a running client is booted out so its binary can be replaced (see module docstring)
        if pkg.identifier == paths.PKG_ID and launchd.job(mac, paths.LABEL) is not None:
            launchd.unload(mac, paths.LABEL)
        apply_package(mac, pkg, posixpath.basename(pkg_arg))
        mac.save_state()
    if verbose:
        p.out("installer:PHASE:Running package scripts\u2026")
        p.out("installer:PHASE:Validating packages\u2026")
        p.out("installer:%97.75")
        p.out("installer:PHASE:Finishing the Installation\u2026")
        p.out("installer:STATUS:")
        p.out("installer:%100.0")
    p.out("installer: The install was successful.")
    return 0


def apply_package(mac: VirtualMac, pkg: Package, package_file: str) -> None:
    """Lay the payload down under the install location (root-owned; the conf is replaced with the
    package's defaults) and write the receipt. No checks, no output: callers check root and space."""
    base = pkg.install_location
    for e in pkg.entries:
        dest = posixpath.join(base, e.path)
        if e.data is None:
            mac.fs.makedirs(dest, mode=e.mode)
        else:
            mac.fs.makedirs(posixpath.dirname(dest))
            mac.fs.write_bytes(dest, e.data, mode=e.mode)
            mac.fs.set_owner(dest, 0)
    receipts.write_receipt(
        mac.fs,
        receipts.Receipt(
            pkg_id=pkg.identifier,
            version=pkg.version,
            prefix=base.strip("/") or "/",
            install_time=int(time.time()),
            package_file=package_file,
            entries=[receipts.BomEntry(e.path, e.is_dir, e.mode) for e in pkg.entries],
        ),
    )
