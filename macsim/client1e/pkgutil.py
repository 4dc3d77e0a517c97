"""`pkgutil`: the receipts database (--pkgs, --pkg-info, --files, --forget) and --check-signature.

Real wording: `No receipt for 'X' found at '/'.` (exit 1) and `Forgot package 'X' on '/'.`
(lionheart/openradar-mirror#8219); --pkg-info prints package-id, version, volume, location, install-time;
--check-signature prints `Package "x.pkg":` then `   Status: ...` and the certificate chain. The signing
identity is fake (team id FAKE1ETEAM, see macsim.client1e.pkg.SIGNER). A non-root --forget fails with the
Cocoa file-permission error pkgutil reports when it cannot remove the receipt (NSCocoaErrorDomain
Code=513), modelled on the Code=4 report in the same radar.
"""

from __future__ import annotations

import hashlib
import plistlib
import re

from macsim.client1e import receipts
from macsim.client1e.pkg import PkgError, pkg_payload, read_pkg, read_pkg_info
from macsim.shell.proc import Proc
from macsim.vfs import VfsError

USAGE = """\
Usage: pkgutil [OPTIONS] [COMMANDS] ...

Options:
  --help                 Show this usage guide
  --verbose, -v          Show contextual information and format for easy reading
  --force, -f            Perform all operations without asking for confirmation
  --volume PATH          Perform all operations on the specified volume or home directory
  --edit-pkg PKGID       Adjust properties of package PKGID using --learn PATH
  --only-files           List only files (not directories) in --files listing
  --only-dirs            List only directories (not files) in --files listing
  --regexp               Try all PKGID arguments as regular expressions

Receipt Database Commands:
  --pkgs, --packages     List all currently installed package IDs on --volume
  --pkgs-plist           List all package IDs on --volume in plist format
  --pkgs=REGEXP          List package IDs on --volume that match REGEXP
  --files PKGID          List files installed by the specified package
  --pkg-info PKGID       Show metadata about PKGID
  --pkg-info-plist PKGID Show metadata about PKGID in plist format
  --forget PKGID         Discard receipt data for the specified package

File Commands:
  --expand PKG DIR       Write flat package entries to DIR
  --check-signature PKG  Validate the signature of a package archive
"""


def _no_receipt(p: Proc, pkg_id: str, volume: str) -> int:
    p.err(f"No receipt for '{pkg_id}' found at '{volume}'.")
    return 1


async def pkgutil(p: Proc) -> int:
    """The pkgutil command. Exit 0 on success, 1 on failure or usage error."""
    args = p.argv[1:]
    volume = "/"
    only_files = only_dirs = False
    command: tuple[str, str | None] | None = None
    it = iter(args)
    for a in it:
        if a == "--volume":
            v = next(it, None)
            if v is None:
                p.err(USAGE)
                return 1
            volume = v
        elif a == "--only-files":
            only_files = True
        elif a == "--only-dirs":
            only_dirs = True
        elif a in ("--verbose", "-v", "--force", "-f", "--regexp"):
            continue
        elif a in ("--help", "-h"):
            p.out(USAGE)
            return 0
        elif a in ("--pkgs", "--packages", "--pkgs-plist") or a.startswith("--pkgs="):
            command = (a, None)
        elif a == "--expand":
            pkg_path, dir_path = next(it, None), next(it, None)
            if pkg_path is None or dir_path is None:
                p.err(f"pkgutil: option `{a}' requires 2 arguments")  # invented wording
                p.err(USAGE)
                return 1
            return _expand(p, pkg_path, dir_path)
        elif a in ("--files", "--pkg-info", "--pkg-info-plist", "--forget", "--check-signature"):
            val = next(it, None)
            if val is None:
                p.err(f"pkgutil: option `{a}' requires an argument")
                p.err(USAGE)
                return 1
            command = (a, val)
        else:
            p.err(
                f"pkgutil: unrecognized option `{a}'"
                if a.startswith("-")
                else f"pkgutil: unexpected argument '{a}'"
            )
            p.err(USAGE)
            return 1
    if command is None:
        p.err(USAGE)
        return 1
    cmd, val = command
    fs = p.mac.fs
    if cmd == "--check-signature":
        assert val is not None
        return _check_signature(p, val)
    if volume != "/":
        ids: list[str] = []
    else:
        ids = receipts.list_receipts(fs)
    if cmd.startswith("--pkgs") or cmd == "--packages":
        if cmd == "--pkgs-plist":
            p.stdout.write(plistlib.dumps(ids))
            return 0
        if cmd.startswith("--pkgs="):
            try:
                rx = re.compile(cmd.split("=", 1)[1])
            except re.error:
                p.err(f"pkgutil: invalid regular expression '{cmd.split('=', 1)[1]}'")
                return 1
            ids = [i for i in ids if rx.fullmatch(i)]
            if not ids:
                return 1
        for i in ids:
            p.out(i)
        return 0
    assert val is not None
    r = receipts.read_receipt(fs, val) if val in ids else None
    if r is None:
        return _no_receipt(p, val, volume)
    if cmd == "--pkg-info":
        p.out(f"package-id: {r.pkg_id}")
        p.out(f"version: {r.version}")
        p.out(f"volume: {volume}")
        p.out(f"location: {r.prefix}")
        p.out(f"install-time: {r.install_time}")
        return 0
    if cmd == "--pkg-info-plist":
        p.stdout.write(
            plistlib.dumps(
                {
                    "pkg-id": r.pkg_id,
                    "pkg-version": r.version,
                    "volume": volume,
                    "install-location": r.prefix,
                    "install-time": r.install_time,
                }
            )
        )
        return 0
    if cmd == "--files":
        for e in r.entries:
            if (only_files and e.is_dir) or (only_dirs and not e.is_dir):
                continue
            p.out(e.path)
        return 0
    # --forget
    if p.uid != 0:
        p.err(
            f'Unknown error Error Domain=NSCocoaErrorDomain Code=513 "\u201c{val}.bom\u201d couldn\u2019t be '
            'removed because you don\u2019t have permission to access it." UserInfo={NSFilePath='
            f"/var/db/receipts/{val}.bom, NSUserStringVariant=(\n    Remove\n), NSUnderlyingError="
            '{Error Domain=NSPOSIXErrorDomain Code=13 "Permission denied"}}.'
        )
        return 1
    receipts.forget_receipt(fs, val)
    p.out(f"Forgot package '{val}' on '{volume}'.")
    return 0


def _expand(p: Proc, pkg_arg: str, dir_arg: str) -> int:
    """`--expand PKG DIR`: "Expand the flat package at pkg-path into a new directory specified by dir-path"
    (pkgutil(1)). Writes PackageInfo (the pkg-info element as pkgbuild writes it: format-version,
    identifier, version, install-location, auth; payload numberOfFiles/installKBytes) and Payload (our
    heap); no Bom. Messages for a missing package or an existing directory are our own wording."""
    fs = p.mac.fs
    src, dest = p.path(pkg_arg), p.path(dir_arg)
    try:
        fs.check_read(src, p.uid)
        data = fs.read_bytes(src)
        pkg = read_pkg(data)
    except VfsError as e:
        p.err(f"Could not open package for expansion: {pkg_arg} ({e.strerror})")
        return 1
    except PkgError:
        p.err(f"Could not open package for expansion: {pkg_arg}")
        return 1
    if fs.exists(dest):
        p.err(f"Error: {dir_arg} already exists")
        return 1
    try:
        fs.check_create(dest, p.uid)
    except VfsError as e:
        p.err(f"Could not create {dir_arg}: {e.strerror}")
        return 1
    kbytes = (pkg.payload_size + 1023) // 1024
    info = (
        '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n'
        f'<pkg-info overwrite-permissions="true" relocatable="false" identifier="{pkg.identifier}" '
        f'postinstall-action="none" version="{pkg.version}" format-version="2" '
        f'install-location="{pkg.install_location}" auth="root">\n'
        f'    <payload numberOfFiles="{len(pkg.entries)}" installKBytes="{kbytes}"/>\n'
        "</pkg-info>\n"
    )
    fs.makedirs(dest, uid=p.uid)
    fs.write_bytes(f"{dest}/PackageInfo", info.encode(), uid=p.uid)
    fs.write_bytes(f"{dest}/Payload", pkg_payload(data), uid=p.uid)
    return 0


def _fingerprint(name: str) -> str:
    h = hashlib.sha256(name.encode()).hexdigest().upper()
    pairs = [h[i : i + 2] for i in range(0, 64, 2)]
    return "\n           ".join(" ".join(pairs[i : i + 16]) for i in range(0, 32, 16))


def _check_signature(p: Proc, arg: str) -> int:
    path = p.path(arg)
    p.out(f'Package "{arg.rsplit("/", 1)[-1]}":')
    try:
        p.mac.fs.check_read(path, p.uid)
        info = read_pkg_info(p.mac.fs.read_bytes(path))
    except VfsError as e:
        p.out(f"   Status: {e.strerror or 'No such file or directory'}")
        return 1
    except PkgError:
        p.out("   Status: package is invalid (checksum did not verify)")
        return 1
    if not info.signed:
        p.out("   Status: no signature")
        return 1
    p.out("   Status: signed by a developer certificate issued by Apple for distribution")
    p.out("   Notarization: trusted by the Apple notary service")
    p.out("   Signed with a trusted timestamp on: 2024-03-12 09:14:03 +0000")
    p.out("   Certificate Chain:")
    expiries = ("2027-02-01 22:12:15 +0000", "2031-09-17 00:00:00 +0000", "2035-02-09 21:40:36 +0000")
    for n, (name, exp) in enumerate(zip(info.signature_chain, expiries, strict=False), start=1):
        p.out(f"    {n}. {name}")
        p.out(f"       Expires: {exp}")
        p.out("       SHA256 Fingerprint:")
        p.out(f"           {_fingerprint(name)}")
        if n < len(info.signature_chain):
            p.out("       " + "-" * 72)
    p.out("")
    return 0
