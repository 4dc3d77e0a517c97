"""hdiutil attach/detach/info/imageinfo against the virtual Mac."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest

from macsim.client1e.dmg import build_dmg
from macsim.client1e.hdiutil import hdiutil
from macsim.mac import VirtualMac
from tests.macsim.test_client1e_support import make_mac, run

V = "8.0.1.23"
VOL = f"/Volumes/image.1e.client-macOS_v{V}"


@pytest.fixture
def mac(tmp_path: Path) -> VirtualMac:
    m = make_mac(tmp_path)
    m.fs.write_bytes(f"/Users/admin/1e.client-macOS_v{V}.dmg", build_dmg(V), mode=0o644, uid=501)
    return m


async def test_attach_mounts_volume_and_prints_device_table(mac: VirtualMac) -> None:
    r = await run(
        hdiutil,
        mac,
        ["hdiutil", "attach", f"1e.client-macOS_v{V}.dmg", "-nobrowse"],
        uid=501,
        cwd="/Users/admin",
    )
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == f"{'/dev/disk4':<20}\t{'GUID_partition_scheme':<31}\t"
    assert lines[-1] == f"{'/dev/disk4s1':<20}\t{'Apple_HFS':<31}\t{VOL}"
    assert mac.fs.read_bytes(f"{VOL}/scripts/install.sh").startswith(
        b"#!/bin/bash\n#!macsim-script install.sh"
    )
    assert mac.fs.real(f"{VOL}/scripts/install.sh").stat().st_mode & 0o777 == 0o755
    assert mac.fs.owner(f"{VOL}/1e.client-macOS_v{V}.pkg") == 0
    assert mac.state.mounts[VOL]["device"] == "disk4"
    # attaching the same image again reports the existing device instead of mounting twice
    again = await run(hdiutil, mac, ["hdiutil", "attach", f"/Users/admin/1e.client-macOS_v{V}.dmg"], uid=501)
    assert again.rc == 0 and again.out == r.out and len(mac.state.mounts) == 1


async def test_attach_plist_and_quiet(mac: VirtualMac) -> None:
    r = await run(
        hdiutil, mac, ["hdiutil", "attach", "-plist", "-noverify", f"/Users/admin/1e.client-macOS_v{V}.dmg"]
    )
    ents = plistlib.loads(r.raw_out)["system-entities"]
    assert [e.get("mount-point") for e in ents] == [None, VOL]
    r2 = await run(hdiutil, mac, ["hdiutil", "detach", VOL, "-quiet"])
    assert (r2.rc, r2.out) == (0, "")


async def test_detach_by_mount_point_and_device(mac: VirtualMac) -> None:
    await run(hdiutil, mac, ["hdiutil", "attach", f"/Users/admin/1e.client-macOS_v{V}.dmg"])
    r = await run(hdiutil, mac, ["hdiutil", "eject", VOL])
    assert (r.rc, r.out) == (0, '"disk4" ejected.\n')
    assert not mac.fs.exists(VOL) and mac.state.mounts == {}
    await run(hdiutil, mac, ["hdiutil", "attach", f"/Users/admin/1e.client-macOS_v{V}.dmg"])
    r = await run(hdiutil, mac, ["hdiutil", "detach", "/dev/disk4"])
    assert r.rc == 0 and not mac.fs.exists(VOL)
    r = await run(hdiutil, mac, ["hdiutil", "detach", "/Volumes/nothing"])
    assert (r.rc, r.err) == (1, "hdiutil: detach failed - No such file or directory\n")


async def test_corrupt_truncated_and_missing_images_fail_like_hdiutil(mac: VirtualMac) -> None:
    good = bytearray(build_dmg(V))
    bad = bytearray(good)
    bad[3000] ^= 0xFF
    mac.fs.write_bytes("/private/tmp/corrupt.dmg", bytes(bad))
    mac.fs.write_bytes("/private/tmp/short.dmg", bytes(good[: len(good) // 2]))
    r = await run(hdiutil, mac, ["hdiutil", "attach", "/tmp/corrupt.dmg"])
    assert (r.rc, r.err) == (1, "hdiutil: attach failed - corrupt image\n")
    r = await run(hdiutil, mac, ["hdiutil", "attach", "-noverify", "/tmp/corrupt.dmg"])
    assert (r.rc, r.err) == (1, "hdiutil: attach failed - corrupt image\n")
    r = await run(hdiutil, mac, ["hdiutil", "attach", "/tmp/short.dmg"])
    assert (r.rc, r.err) == (1, "hdiutil: attach failed - image not recognized\n")
    r = await run(hdiutil, mac, ["hdiutil", "attach", "/tmp/none.dmg"])
    assert (r.rc, r.err) == (1, "hdiutil: attach failed - No such file or directory\n")
    assert mac.state.mounts == {} and not mac.fs.exists(VOL)


async def test_mountpoint_busy_and_permissions(mac: VirtualMac) -> None:
    img = f"/Users/admin/1e.client-macOS_v{V}.dmg"
    r = await run(hdiutil, mac, ["hdiutil", "attach", img, "-mountpoint", "/Library/mnt"], uid=501)
    assert (r.rc, r.err) == (1, "hdiutil: attach failed - Permission denied\n")
    r = await run(hdiutil, mac, ["hdiutil", "attach", img, "-mountpoint", "/private/tmp/m"])
    assert r.rc == 0 and r.out.endswith("\t/private/tmp/m\n")
    mac.fs.write_bytes("/private/tmp/other.dmg", build_dmg("8.0.2.5"))
    r = await run(
        hdiutil, mac, ["hdiutil", "attach", "/private/tmp/other.dmg", "-mountpoint", "/private/tmp/m"]
    )
    assert (r.rc, r.err) == (1, "hdiutil: attach failed - Resource busy\n")


async def test_usage_errors(mac: VirtualMac) -> None:
    r = await run(hdiutil, mac, ["hdiutil", "attach", "-bogus", "x.dmg"])
    assert r.rc == 1 and r.err.startswith("Usage:\thdiutil attach [options] <image>")
    r = await run(hdiutil, mac, ["hdiutil"])
    assert r.rc == 1 and r.err.startswith("Usage: hdiutil <verb> <options>\n<verb> is one of the following:")
    r = await run(hdiutil, mac, ["hdiutil", "frobnicate"])
    assert r.rc == 1 and "<verb> is one of the following:" in r.err


async def test_info_and_imageinfo(mac: VirtualMac) -> None:
    img = f"/Users/admin/1e.client-macOS_v{V}.dmg"
    r = await run(hdiutil, mac, ["hdiutil", "imageinfo", img])
    assert r.rc == 0 and "Format: UDZO\n" in r.out and "Checksum Type: CRC32" in r.out
    await run(hdiutil, mac, ["hdiutil", "attach", img])
    r = await run(hdiutil, mac, ["hdiutil", "info"])
    assert f"image-path      : {img}\n" in r.out and r.out.rstrip().endswith(VOL)
    info = plistlib.loads((await run(hdiutil, mac, ["hdiutil", "info", "-plist"])).raw_out)
    assert info["images"][0]["image-path"] == img
