"""installer and pkgutil: root and space checks, conf reset on upgrade, receipts and their listings."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest

from macsim.client1e import launchd, paths
from macsim.client1e.installer import installer
from macsim.client1e.pkg import build_pkg
from macsim.client1e.pkgutil import pkgutil
from macsim.mac import VirtualMac
from tests.macsim.test_client1e_support import make_mac, run

PKG1 = "/private/tmp/1e.client-macOS_v8.0.1.23.pkg"
PKG2 = "/private/tmp/1e.client-macOS_v8.0.2.5.pkg"


@pytest.fixture
def mac(tmp_path: Path) -> VirtualMac:
    m = make_mac(tmp_path)
    m.fs.write_bytes(PKG1, build_pkg("8.0.1.23"), mode=0o644)
    m.fs.write_bytes(PKG2, build_pkg("8.0.2.5", signed=False), mode=0o644)
    return m


async def test_fresh_install_lays_down_payload_and_receipt(mac: VirtualMac) -> None:
    r = await run(installer, mac, ["installer", "-pkg", PKG1, "-target", "/"])
    assert r.rc == 0, r.err
    assert r.out == (
        "installer: Package name is 1E Client\n"
        "installer: Installing at base path /\n"
        "installer: The install was successful.\n"
    )
    assert b"version=8.0.1.23" in mac.fs.read_bytes(paths.BINARY)
    assert mac.fs.real(paths.BINARY).stat().st_mode & 0o777 == 0o755
    plist = plistlib.loads(mac.fs.read_bytes(paths.PLIST))
    assert (
        plist["Label"] == paths.LABEL and plist["RunAtLoad"] and plist["ProgramArguments"] == [paths.BINARY]
    )
    assert mac.fs.exists("/private/var/db/receipts/com.1e.pkg.1E.Client.plist")
    assert mac.fs.exists("/var/db/receipts/com.1e.pkg.1E.Client.bom")
    assert mac.state.launchd == {}  # the pkg alone does not start the client


async def test_non_root_and_bad_arguments(mac: VirtualMac) -> None:
    r = await run(installer, mac, ["installer", "-pkg", PKG1, "-target", "/"], uid=501)
    assert (r.rc, r.err) == (1, "installer: Must be run as root to install this package.\n")
    assert not mac.fs.exists(paths.BINARY)
    r = await run(installer, mac, ["installer", "-pkg", "/tmp/missing.pkg", "-target", "/"])
    assert (r.rc, r.err) == (
        1,
        "installer: Error the package path specified was invalid: '/tmp/missing.pkg'.\n",
    )
    r = await run(installer, mac, ["installer", "-pkg", PKG1])
    assert r.rc == 1 and r.err.startswith("Usage: installer")
    r = await run(installer, mac, ["installer", "-pkg", PKG1, "-target", "/", "-frob"])
    assert r.rc == 1 and r.err.startswith("Usage: installer")


async def test_not_enough_space_fails_cleanly(tmp_path: Path) -> None:
    m = make_mac(tmp_path, free_space_mb=0)
    m.fs.write_bytes(PKG1, build_pkg("8.0.1.23"))
    r = await run(installer, m, ["installer", "-pkg", PKG1, "-target", "/"])
    assert r.rc == 1
    assert "installer: Cannot install on volume / because it is disabled." in r.err
    assert "not enough space" in r.err
    assert not m.fs.exists(paths.BINARY) and not m.fs.exists(
        "/private/var/db/receipts/com.1e.pkg.1E.Client.plist"
    )


async def test_upgrade_through_pkg_resets_conf_and_stops_the_client(mac: VirtualMac) -> None:
    await run(installer, mac, ["installer", "-pkg", PKG1, "-target", "/"])
    mac.fs.write_text(
        paths.CONF, "Switch=sw.example.test:4000\nBackgroundChannelUrl=https://sw.example.test/Bg\n"
    )
    launchd.load(mac, launchd.read_job(mac, paths.PLIST))
    assert launchd.job(mac, paths.LABEL) is not None
    r = await run(installer, mac, ["installer", "-pkg", PKG2, "-target", "/", "-verbose"])
    assert r.rc == 0 and "installer: Upgrading at base path /\n" in r.out and "installer:PHASE:" in r.out
    assert "\nSwitch=\n" in mac.fs.read_text(paths.CONF)
    assert b"version=8.0.2.5" in mac.fs.read_bytes(paths.BINARY)
    assert launchd.job(mac, paths.LABEL) is None


async def test_damaged_pkg_fails_to_extract(mac: VirtualMac) -> None:
    raw = bytearray(build_pkg("8.0.1.23"))
    raw[-600] ^= 0x55
    mac.fs.write_bytes("/private/tmp/bad.pkg", bytes(raw))
    r = await run(installer, mac, ["installer", "-pkg", "/private/tmp/bad.pkg", "-target", "/"])
    assert r.rc == 1 and "An error occurred while extracting files from the package “bad.pkg”" in r.out
    assert not mac.fs.exists(paths.BINARY)


async def test_pkgutil_receipt_queries(mac: VirtualMac) -> None:
    await run(installer, mac, ["installer", "-pkg", PKG1, "-target", "/"])
    r = await run(pkgutil, mac, ["pkgutil", "--pkgs"], uid=501)
    assert r.out == "com.1e.pkg.1E.Client\n"
    r = await run(pkgutil, mac, ["pkgutil", "--pkg-info", paths.PKG_ID], uid=501)
    lines = r.out.splitlines()
    assert lines[:4] == [
        "package-id: com.1e.pkg.1E.Client",
        "version: 8.0.1.23",
        "volume: /",
        "location: Library",
    ]
    assert lines[4].startswith("install-time: ") and int(lines[4].split(": ")[1]) > 1_600_000_000
    files = (await run(pkgutil, mac, ["pkgutil", "--only-files", "--files", paths.PKG_ID])).out.splitlines()
    assert "Application Support/1E/Client/1E.Client" in files
    assert "LaunchDaemons/com.1e.pkg.1E.Client.plist" in files and "LaunchDaemons" not in files
    dirs = (await run(pkgutil, mac, ["pkgutil", "--only-dirs", "--files", paths.PKG_ID])).out.splitlines()
    assert dirs == [
        "Application Support",
        "Application Support/1E",
        "Application Support/1E/Client",
        "LaunchDaemons",
    ]
    # every listed file exists relative to /Library, as the documented `cd /Library; ... | xargs rm` assumes
    assert all(mac.fs.exists(f"/Library/{f}") for f in files)
    assert (await run(pkgutil, mac, ["pkgutil", "--pkgs=com\\.1e\\..*"])).rc == 0
    assert (await run(pkgutil, mac, ["pkgutil", "--pkgs=com\\.apple\\..*"])).rc == 1


async def test_pkgutil_forget_and_unknown_receipts(mac: VirtualMac) -> None:
    r = await run(pkgutil, mac, ["pkgutil", "--pkg-info", paths.PKG_ID])
    assert (r.rc, r.err) == (1, "No receipt for 'com.1e.pkg.1E.Client' found at '/'.\n")
    await run(installer, mac, ["installer", "-pkg", PKG1, "-target", "/"])
    r = await run(pkgutil, mac, ["pkgutil", "--forget", paths.PKG_ID], uid=501)
    assert r.rc == 1 and "Code=513" in r.err and "Forgot" not in r.out
    r = await run(pkgutil, mac, ["pkgutil", "--forget", paths.PKG_ID])
    assert (r.rc, r.out) == (0, "Forgot package 'com.1e.pkg.1E.Client' on '/'.\n")
    assert (await run(pkgutil, mac, ["pkgutil", "--pkgs"])).out == ""
    r = await run(pkgutil, mac, ["pkgutil", "--forget", paths.PKG_ID])
    assert (r.rc, r.err) == (1, "No receipt for 'com.1e.pkg.1E.Client' found at '/'.\n")
    r = await run(pkgutil, mac, ["pkgutil", "--bogus"])
    assert r.rc == 1 and r.err.startswith("pkgutil: unrecognized option `--bogus'")


async def test_pkgutil_check_signature(mac: VirtualMac) -> None:
    r = await run(pkgutil, mac, ["pkgutil", "--check-signature", PKG1], uid=501)
    assert r.rc == 0
    assert r.out.startswith(
        'Package "1e.client-macOS_v8.0.1.23.pkg":\n'
        "   Status: signed by a developer certificate issued by Apple for distribution\n"
    )
    assert "   Certificate Chain:\n    1. Developer ID Installer: 1E LTD (FAKE1ETEAM)\n" in r.out
    assert "    3. Apple Root CA\n" in r.out
    r = await run(pkgutil, mac, ["pkgutil", "--check-signature", PKG2])
    assert (r.rc, r.out) == (1, 'Package "1e.client-macOS_v8.0.2.5.pkg":\n   Status: no signature\n')


async def test_installer_pkginfo_terse_and_verbose_carry_no_version(mac: VirtualMac) -> None:
    mac.fs.makedirs("/private/tmp/p")
    mac.fs.write_bytes("/private/tmp/p/a.pkg", build_pkg("8.0.2.5"))
    r = await run(installer, mac, ["installer", "-pkginfo", "-pkg", "/private/tmp/p/a.pkg"], uid=501)
    assert (r.rc, r.out) == (0, "1E Client\n")
    r = await run(installer, mac, ["installer", "-verbose", "-pkginfo", "-pkg", "/private/tmp/p/a.pkg"], uid=501)
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[:3] == ["", "Package information:", ""]
    # the public transcript's layout: the field name padded to 17, " : ", the value
    assert lines[3] == "Package           : 1E Client"
    assert [ln.split(" : ")[0].rstrip() for ln in lines[3:]] == [
        "Package", "Status", "Will Restart", "Size", "Must Authenticate", "Title", "Description", "Message"]
    assert "8.0.2.5" not in r.out
    r = await run(installer, mac, ["installer", "-pkginfo", "-pkg", "/private/tmp/p/none.pkg"])
    assert r.rc == 1 and "the package path specified was invalid" in r.err
    r = await run(installer, mac, ["installer", "-pkginfo"])
    assert r.rc == 1 and r.err.startswith("Usage: installer")
