"""`hdiutil`: attach (mount), detach/eject, info and imageinfo for UDIF images (see macsim.client1e.dmg).

Messages follow the real tool: usage text as hdiutil prints it (seen in public transcripts of `hdiutil`
with no verb), failures as `hdiutil: attach failed - <strerror or reason>` (e.g. "image not recognized",
nwutils/updater#118; "Resource busy", davilla/atvusb-creator#110), exit status 1. The attach table is
`/dev/diskN` padded to 20, a tab, the content hint padded to 31, a tab, the mount point
(layout from MagerValp/AutoDMG#240).
"""

from __future__ import annotations

import mmap
import os
import plistlib
import posixpath
import shutil
from pathlib import Path
from typing import Any

from macsim.client1e import dmg
from macsim.mac import VirtualMac
from macsim.shell.proc import Proc
from macsim.vfs import VfsError

VERBS = (
    "help",
    "attach",
    "detach",
    "eject",
    "verify",
    "create",
    "compact",
    "convert",
    "burn",
    "info",
    "checksum",
    "chpass",
    "erasekeys",
    "imageinfo",
    "isencrypted",
    "makehybrid",
    "mount",
    "mountvol",
    "unmount",
    "plugins",
    "resize",
    "segment",
    "pmap",
    "udifderez",
    "udifrez",
)
FRAMEWORK = "671.140.2"
ICON = "/System/Library/PrivateFrameworks/DiskImages.framework/Resources/CDiskImage.icns"


def _usage() -> str:
    lines = [
        "Usage: hdiutil <verb> <options>",
        "<verb> is one of the following:",
        *VERBS,
        "help\t\t\t   display more detailed help",
        "",
    ]
    return "\n".join(lines)


def _verb_usage(verb: str) -> str:
    target = "<image>" if verb in ("attach", "imageinfo", "mount") else "<devname>"
    return f"Usage:\thdiutil {verb} [options] {target}\n\thdiutil {verb} -help\n"


def _row(dev: str, hint: str, mount: str = "") -> str:
    return f"{dev:<20}\t{hint:<31}\t{mount}"


def _entities(m: dict[str, Any]) -> list[dict[str, Any]]:
    dev = m["device"]
    return [
        {
            "content-hint": "GUID_partition_scheme",
            "dev-entry": f"/dev/{dev}",
            "potentially-mountable": False,
            "unmapped-content-hint": "GUID_partition_scheme",
        },
        {
            "content-hint": "Apple_HFS",
            "dev-entry": f"/dev/{dev}s1",
            "mount-point": m["mount_point"],
            "potentially-mountable": True,
            "volume-kind": "hfs",
            "unmapped-content-hint": "Apple_HFS",
        },
    ]


def _print_attach(p: Proc, m: dict[str, Any], as_plist: bool) -> None:
    if as_plist:
        p.stdout.write(plistlib.dumps({"system-entities": _entities(m)}))
        return
    p.out(_row(f"/dev/{m['device']}", "GUID_partition_scheme"))
    p.out(_row(f"/dev/{m['device']}s1", "Apple_HFS", m["mount_point"]))


def _next_device(mac: VirtualMac) -> str:
    used = {m["device"] for m in mac.state.mounts.values()}
    n = 4  # disk0..disk3 are the internal disk and its APFS containers on a typical Mac
    while f"disk{n}" in used:
        n += 1
    return f"disk{n}"


def _fail(p: Proc, verb: str, reason: str) -> int:
    p.err(f"hdiutil: {verb} failed - {reason}")
    return 1


def _read_image(real: Path, verify: bool) -> dmg.DiskImage:
    """Map the image instead of reading it: with -noverify only its trailer, plist and volume are touched,
    as hdiutil does (reading 30 MB per Mac made every simulated attach cost the shared CPU)."""
    with real.open("rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return dmg.read_dmg(b"", verify=verify)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return dmg.read_dmg(mapped, verify=verify)


async def _attach(p: Proc, args: list[str]) -> int:
    opts: dict[str, Any] = {"verify": True, "plist": False, "quiet": False, "mountpoint": None}
    images: list[str] = []
    it = iter(args)
    for a in it:
        if a in ("-nobrowse", "-noautoopen", "-readonly", "-autoopen", "-browse", "-noidme", "-owners"):
            continue
        if a == "-noverify":
            opts["verify"] = False
        elif a == "-verify":
            opts["verify"] = True
        elif a == "-quiet":
            opts["quiet"] = True
        elif a == "-plist":
            opts["plist"] = True
        elif a == "-mountpoint":
            mp = next(it, None)
            if mp is None:
                p.err(_verb_usage("attach"))
                return 1
            opts["mountpoint"] = p.path(mp)
        elif a == "-help":
            p.out(_verb_usage("attach"))
            return 0
        elif a.startswith("-"):
            p.err(_verb_usage("attach"))
            return 1
        else:
            images.append(a)
    if len(images) != 1:
        p.err(_verb_usage("attach"))
        return 1
    mac = p.mac
    image = p.path(images[0])
    try:
        mac.fs.check_read(image, p.uid)
        if mac.fs.real(image).is_dir():
            return _fail(p, "attach", "image not recognized")
    except VfsError as e:
        return _fail(p, "attach", e.strerror or "No such file or directory")
    canon = mac.fs.canonical(image)
    async with mac.lock:
        for m in mac.state.mounts.values():
            if m["image"] == canon:  # attaching an attached image reports the existing device
                if not opts["quiet"]:
                    _print_attach(p, m, opts["plist"])
                return 0
        try:
            img = _read_image(mac.fs.real(image), opts["verify"])
        except dmg.DmgError as e:
            return _fail(
                p, "attach", "image not recognized" if e.kind == "not-recognized" else "corrupt image"
            )
        mp = opts["mountpoint"]
        if mp is None:
            mp = f"/Volumes/{img.volume_name}"
            n = 1
            while mac.fs.exists(mp) or mp in mac.state.mounts:
                mp = f"/Volumes/{img.volume_name} {n}"
                n += 1
        else:
            if mac.fs.canonical(mp) in {mac.fs.canonical(k) for k in mac.state.mounts}:
                return _fail(p, "attach", "Resource busy")
            try:
                if mac.fs.exists(mp):
                    if not mac.fs.real(mp).is_dir():
                        return _fail(p, "attach", "Not a directory")
                    if p.uid != 0 and mac.fs.owner(mp) != p.uid:
                        return _fail(p, "attach", "Permission denied")
                else:
                    mac.fs.check_create(mp, p.uid)
            except VfsError as e:
                return _fail(p, "attach", e.strerror or "Permission denied")
        _extract(mac, mp, img)
        m = {
            "image": canon,
            "device": _next_device(mac),
            "mount_point": mp,
            "volume_name": img.volume_name,
            "format": img.format,
            "sectors": img.sector_count,
            "uid": p.uid,
        }
        mac.state.mounts[mp] = m
        mac.save_state()
    if not opts["quiet"]:
        _print_attach(p, m, opts["plist"])
    return 0


def _extract(mac: VirtualMac, mp: str, img: dmg.DiskImage) -> None:
    """The volume's content appears at the mount point, owned by root (a read-only HFS volume)."""
    mac.fs.makedirs(mp)
    for f in img.files:
        path = posixpath.join(mp, f.path)
        if f.data is None:
            mac.fs.makedirs(path, mode=f.mode)
        else:
            mac.fs.makedirs(posixpath.dirname(path))
            mac.fs.write_bytes(path, f.data, mode=f.mode)


def _find_mount(mac: VirtualMac, target: str, cwd: str) -> str | None:
    dev = target.removeprefix("/dev/")
    for mp, m in mac.state.mounts.items():
        if dev in (m["device"], f"{m['device']}s1"):
            return mp
    c = mac.fs.canonical(target, cwd)
    for mp in mac.state.mounts:
        if mac.fs.canonical(mp) == c:
            return mp
    return None


async def _detach(p: Proc, verb: str, args: list[str]) -> int:
    quiet = False
    targets: list[str] = []
    for a in args:
        if a == "-force":
            continue
        if a == "-quiet":
            quiet = True
        elif a == "-help":
            p.out(_verb_usage(verb))
            return 0
        elif a.startswith("-"):
            p.err(_verb_usage(verb))
            return 1
        else:
            targets.append(a)
    if len(targets) != 1:
        p.err(_verb_usage(verb))
        return 1
    mac = p.mac
    async with mac.lock:
        mp = _find_mount(mac, targets[0], p.cwd)
        if mp is None:
            return _fail(p, verb, "No such file or directory")
        m = mac.state.mounts[mp]
        if p.uid != 0 and m.get("uid", 0) != p.uid:
            return _fail(p, verb, "Permission denied")
        real = mac.fs.real(mp)
        if real.exists():
            shutil.rmtree(real)
        mac.fs.forget(mp)
        del mac.state.mounts[mp]
        mac.save_state()
    if not quiet:
        p.out(f'"{m["device"]}" ejected.')
    return 0


def _info(p: Proc, args: list[str]) -> int:
    if any(a != "-plist" for a in args):
        p.err(_verb_usage("info"))
        return 1
    mounts = list(p.mac.state.mounts.values())
    if "-plist" in args:
        images = [
            {
                "image-path": m["image"],
                "image-type": "read-only disk image",
                "writeable": False,
                "removable": True,
                "autodiskmount": True,
                "system-entities": _entities(m),
            }
            for m in mounts
        ]
        p.stdout.write(plistlib.dumps({"framework": FRAMEWORK, "images": images}))
        return 0
    p.out(f"framework       : {FRAMEWORK}")
    p.out(f"driver          : {FRAMEWORK}")
    for m in mounts:
        p.out("================================================")
        p.out(f"image-path      : {m['image']}")
        p.out("shadow-path     : <none>")
        p.out(f"icon-path       : {ICON}")
        p.out("image-type      : read-only disk image")
        p.out("system-image    : false")
        p.out(f"blockcount      : {m['sectors']}")
        p.out("blocksize       : 512")
        p.out("writeable       : FALSE")
        p.out("autodiskmount   : TRUE")
        p.out("removable       : TRUE")
        p.out("image-encrypted : false")
        p.out(_row(f"/dev/{m['device']}", "GUID_partition_scheme"))
        p.out(_row(f"/dev/{m['device']}s1", "Apple_HFS", m["mount_point"]))
    return 0


def _imageinfo(p: Proc, args: list[str]) -> int:
    files = [a for a in args if not a.startswith("-")]
    if len(files) != 1 or any(a.startswith("-") and a != "-plist" for a in args):
        p.err(_verb_usage("imageinfo"))
        return 1
    path = p.path(files[0])
    try:
        p.mac.fs.check_read(path, p.uid)
        data = p.mac.fs.read_bytes(path)
        img = dmg.read_dmg(data)
    except VfsError as e:
        return _fail(p, "imageinfo", e.strerror or "No such file or directory")
    except dmg.DmgError as e:
        return _fail(
            p, "imageinfo", "image not recognized" if e.kind == "not-recognized" else "corrupt image"
        )
    info = {
        "Format Description": "UDIF read-only compressed (zlib)",
        "Class Name": "CUDIFDiskImage",
        "Checksum Type": "CRC32",
        "Format": img.format,
        "Checksum Value": f"${img.data_fork_crc:08X}",
        "Size Information": {
            "Sector Count": img.sector_count,
            "Total Bytes": img.sector_count * 512,
            "Compressed Bytes": len(data),
        },
        "Partitions": {
            "partitions": [
                {"partition-name": f"disk image ({img.volume_name} : 1)", "partition-hint": "Apple_HFS"}
            ]
        },
    }
    if "-plist" in args:
        p.stdout.write(plistlib.dumps(info))
        return 0
    p.out(f"Format Description: {info['Format Description']}")
    p.out(f"Class Name: {info['Class Name']}")
    p.out("Checksum Type: CRC32")
    p.out(f"Format: {img.format}")
    p.out(f"Checksum Value: ${img.data_fork_crc:08X}")
    p.out("Size Information:")
    p.out(f"\tSector Count: {img.sector_count}")
    p.out(f"\tTotal Bytes: {img.sector_count * 512}")
    p.out(f"\tCompressed Bytes: {len(data)}")
    p.out("partitions:")
    p.out(f"\t0: disk image ({img.volume_name} : 1) (Apple_HFS)")
    return 0


async def hdiutil(p: Proc) -> int:
    """The hdiutil command. Exit 0 on success, 1 on any failure or usage error."""
    if len(p.argv) < 2:
        p.err(_usage())
        return 1
    verb, args = p.argv[1], p.argv[2:]
    if verb in ("attach", "mount"):
        return await _attach(p, args)
    if verb in ("detach", "eject", "unmount"):
        return await _detach(p, verb, args)
    if verb == "info":
        return _info(p, args)
    if verb == "imageinfo":
        return _imageinfo(p, args)
    if verb == "help":
        p.out(_usage())
        return 0
    p.err(_usage())
    return 1
