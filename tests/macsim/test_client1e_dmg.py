"""The UDIF image and the flat package formats: round trips and refusal of damaged files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from macsim.artifacts.dmg import write_corrupt_dmg, write_dmg, write_truncated_dmg
from macsim.client1e import dmg, pkg


def test_dmg_round_trip_has_volume_and_real_koly(tmp_path: Path) -> None:
    path = write_dmg(tmp_path, "8.0.1.23")
    assert path.name == "1e.client-macOS_v8.0.1.23.dmg"
    data = path.read_bytes()
    koly = data[-512:]
    assert koly[:4] == b"koly"
    version, header_size = struct.unpack(">II", koly[4:12])
    assert (version, header_size) == (4, 512)
    df_off, df_len = struct.unpack(">QQ", koly[24:40])
    ck_type, ck_bits = struct.unpack(">II", koly[80:88])
    assert (ck_type, ck_bits) == (2, 32)
    assert struct.unpack(">I", koly[88:92])[0] == zlib.crc32(data[df_off : df_off + df_len])
    xml_off, xml_len = struct.unpack(">QQ", koly[216:232])
    assert data[xml_off : xml_off + 5] == b"<?xml"
    assert xml_off + xml_len == len(data) - 512
    img = dmg.read_dmg(data)
    assert img.volume_name == "image.1e.client-macOS_v8.0.1.23"
    modes = {f.path: f.mode for f in img.files}
    assert modes["scripts/install.sh"] == 0o755 and modes["scripts/uninstall.sh"] == 0o755
    assert "1e.client-macOS_v8.0.1.23.pkg" in modes
    assert struct.unpack(">Q", koly[492:500])[0] == img.sector_count == (df_len + 511) // 512


def test_dmg_padded_to_exact_size(tmp_path: Path) -> None:
    path = write_dmg(tmp_path, "8.0.2.5", size_bytes=5 * 1024 * 1024)
    assert path.stat().st_size == 5 * 1024 * 1024
    assert dmg.read_dmg(path.read_bytes()).volume_name == "image.1e.client-macOS_v8.0.2.5"


def test_corrupt_dmg_refused_even_without_verify(tmp_path: Path) -> None:
    data = write_corrupt_dmg(tmp_path, "8.0.1.23").read_bytes()
    with pytest.raises(dmg.DmgError) as e:
        dmg.read_dmg(data)
    assert e.value.kind == "corrupt"
    with pytest.raises(dmg.DmgError) as e2:
        dmg.read_dmg(data, verify=False)
    assert e2.value.kind == "corrupt"


def test_truncated_and_foreign_files_not_recognized(tmp_path: Path) -> None:
    data = write_truncated_dmg(tmp_path, "8.0.1.23").read_bytes()
    with pytest.raises(dmg.DmgError, match="no koly trailer") as e:
        dmg.read_dmg(data)
    assert e.value.kind == "not-recognized"
    with pytest.raises(dmg.DmgError, match="too short"):
        dmg.read_dmg(b"hello")


def test_pkg_is_a_xar_flat_package_with_the_client_payload() -> None:
    raw = pkg.build_pkg("8.0.1.23")
    assert raw[:4] == b"xar!" and struct.unpack(">H", raw[4:6])[0] == 28
    p = pkg.read_pkg(raw)
    assert (p.identifier, p.version, p.install_location) == ("com.1e.pkg.1E.Client", "8.0.1.23", "/Library")
    files = {e.path: e for e in p.entries}
    binary = files["Application Support/1E/Client/1E.Client"]
    assert binary.mode == 0o755 and binary.data is not None
    assert binary.data.startswith(b"#!macsim-script 1E.Client\n") and b"arch=x86_64" in binary.data
    conf = files["Application Support/1E/Client/1E.Client.conf"].data
    assert conf is not None and b"\nSwitch=\n" in conf and b"LoggingLevel=Normal" in conf
    assert "LaunchDaemons/com.1e.pkg.1E.Client.plist" in files
    assert p.signed and p.signature_chain[0] == "Developer ID Installer: 1E LTD (FAKE1ETEAM)"
    other = pkg.read_pkg(pkg.build_pkg("8.0.2.5"))
    assert {e.path: e.data for e in other.entries}[binary.path] != binary.data  # key access is per version


def test_pkg_damage_is_detected() -> None:
    raw = bytearray(pkg.build_pkg("8.0.1.23", signed=False))
    assert not pkg.read_pkg_info(bytes(raw)).signed
    raw[-700] ^= 0xFF
    with pytest.raises(pkg.PkgError, match="checksum mismatch"):
        pkg.read_pkg(bytes(raw))
    with pytest.raises(pkg.PkgError, match="not a flat package"):
        pkg.read_pkg(b"PK\x03\x04 not a pkg")


async def test_pkgutil_expand_writes_packageinfo_with_the_packages_own_version(tmp_path: Path) -> None:
    from macsim.client1e.pkgutil import pkgutil
    from tests.macsim.test_client1e_support import make_mac, run

    mac = make_mac(tmp_path)
    mac.fs.makedirs("/private/tmp/x", uid=501)  # the admin's own directory: --expand needs no root
    mac.fs.write_bytes("/private/tmp/x/a.pkg", pkg.build_pkg("8.0.2.5"))
    r = await run(pkgutil, mac, ["pkgutil", "--expand", "/private/tmp/x/a.pkg", "/private/tmp/x/out"], uid=501)
    assert r.rc == 0, r.err
    info = mac.fs.read_text("/private/tmp/x/out/PackageInfo")
    assert 'identifier="com.1e.pkg.1E.Client"' in info and ' version="8.0.2.5"' in info
    assert mac.fs.read_bytes("/private/tmp/x/out/Payload") == pkg.pkg_payload(pkg.build_pkg("8.0.2.5"))
    assert mac.fs.owner("/private/tmp/x/out/PackageInfo") == 501
    # "a new directory": an existing one is refused; a missing or damaged package too; one argument is usage
    r = await run(pkgutil, mac, ["pkgutil", "--expand", "/private/tmp/x/a.pkg", "/private/tmp/x/out"])
    assert r.rc == 1 and "already exists" in r.err
    r = await run(pkgutil, mac, ["pkgutil", "--expand", "/private/tmp/x/none.pkg", "/private/tmp/x/o2"])
    assert r.rc == 1 and not mac.fs.exists("/private/tmp/x/o2")
    mac.fs.write_bytes("/private/tmp/x/bad.pkg", b"not a package")
    r = await run(pkgutil, mac, ["pkgutil", "--expand", "/private/tmp/x/bad.pkg", "/private/tmp/x/o3"])
    assert r.rc == 1 and not mac.fs.exists("/private/tmp/x/o3")
    r = await run(pkgutil, mac, ["pkgutil", "--expand", "/private/tmp/x/a.pkg"])
    assert r.rc == 1 and "Usage: pkgutil" in r.err
