"""macsim's system-information tools print what real Macs print (sources: public captures named in
macsim/shell/sysinfo.py and macsim/shell/ioreg.py), and the parser fixtures' real samples still parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from .shell_fixtures import make_mac, run


@pytest.mark.parametrize(
    ("version", "build", "tab"),
    [("11.7.2", "20G1020", "\t"), ("12.7.6", "21H1320", "\t"), ("15.7.1", "24G231", "\t\t")],
)
async def test_sw_vers_layout_by_version(tmp_path: Path, version: str, build: str, tab: str) -> None:
    # the exact text sw_vers printed on real hosts of these versions (fizzed/jne fixtures)
    mac = make_mac(tmp_path, macos_version=version, macos_build=build)
    r = await run(mac, "sw_vers")
    assert (r.status, r.out) == (
        0,
        f"ProductName:{tab}macOS\nProductVersion:{tab}{version}\nBuildVersion:{tab}{build}\n",
    )


async def test_ioreg_platform_expert(tmp_path: Path) -> None:
    mac = make_mac(
        tmp_path, serial_number="C02ABCDEFGHJ", hardware_uuid="F79092CB-1A2B-4C3D-8E9F-0123456789AB"
    )
    r = await run(mac, "ioreg -rd1 -c IOPlatformExpertDevice")
    assert r.status == 0
    assert '    "IOPlatformSerialNumber" = "C02ABCDEFGHJ"\n' in r.out
    assert '    "IOPlatformUUID" = "F79092CB-1A2B-4C3D-8E9F-0123456789AB"\n' in r.out
    assert r.out.startswith("+-o ") and "<class IOPlatformExpertDevice," in r.out.splitlines()[0]
    r = await run(mac, "ioreg -Z")
    assert r.status == 1 and "illegal option -- Z" in r.err
    r = await run(mac, "ioreg -c IOUSBDevice")
    assert r.status == 1 and "emulates only" in r.err
