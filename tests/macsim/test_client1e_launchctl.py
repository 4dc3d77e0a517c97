"""launchctl verbs and errors, and boot() after a reboot."""

from __future__ import annotations

from pathlib import Path

import pytest

from macsim.client1e import launchd, paths
from macsim.client1e.installer import apply_package
from macsim.client1e.launchctl import launchctl
from macsim.client1e.pkg import build_pkg, read_pkg
from macsim.mac import VirtualMac
from tests.macsim.test_client1e_support import make_mac, run

HINT = "Try running `launchctl bootstrap` as root for richer errors.\n"


@pytest.fixture
def mac(tmp_path: Path) -> VirtualMac:
    m = make_mac(tmp_path)
    apply_package(m, read_pkg(build_pkg("8.0.1.23")), "x.pkg")
    return m


async def test_load_w_starts_and_list_shows_pid(mac: VirtualMac) -> None:
    r = await run(launchctl, mac, ["launchctl", "load", "-w", paths.PLIST])
    assert (r.rc, r.out, r.err) == (0, "", "")
    rec = mac.state.launchd[paths.LABEL]
    assert isinstance(rec["pid"], int) and rec["verdict"]["reason"] == "not-configured"
    table = (await run(launchctl, mac, ["launchctl", "list"])).out.splitlines()
    assert table[0] == "PID\tStatus\tLabel" and f"{rec['pid']}\t0\t{paths.LABEL}" in table
    d = (await run(launchctl, mac, ["launchctl", "list", paths.LABEL])).out
    assert f'\t"Label" = "{paths.LABEL}";' in d and f'\t"PID" = {rec["pid"]};' in d
    # without root, list shows the caller's domain: the system daemon is not there
    r = await run(launchctl, mac, ["launchctl", "list"], uid=501)
    assert paths.LABEL not in r.out
    r = await run(launchctl, mac, ["launchctl", "list", paths.LABEL], uid=501)
    assert (r.rc, r.err) == (113, f'Could not find service "{paths.LABEL}" in domain for port\n')


async def test_double_load_and_non_root_fail_like_launchctl(mac: VirtualMac) -> None:
    r = await run(launchctl, mac, ["launchctl", "load", "-w", paths.PLIST], uid=501)
    assert (r.rc, r.err) == (5, "Load failed: 5: Input/output error\n" + HINT)
    assert mac.state.launchd == {}
    await run(launchctl, mac, ["launchctl", "load", "-w", paths.PLIST])
    pid = mac.state.launchd[paths.LABEL]["pid"]
    r = await run(launchctl, mac, ["launchctl", "load", "-w", paths.PLIST])
    assert (r.rc, r.err) == (5, "Load failed: 5: Input/output error\n" + HINT)
    assert mac.state.launchd[paths.LABEL]["pid"] == pid
    r = await run(launchctl, mac, ["launchctl", "bootstrap", "system", paths.PLIST])
    assert (r.rc, r.err) == (5, "Bootstrap failed: 5: Input/output error\n")


async def test_unload_stops_and_unload_w_disables(mac: VirtualMac) -> None:
    await run(launchctl, mac, ["launchctl", "load", paths.PLIST])
    r = await run(launchctl, mac, ["launchctl", "unload", "-w", paths.PLIST])
    assert r.rc == 0 and mac.state.launchd == {}
    r = await run(launchctl, mac, ["launchctl", "load", paths.PLIST])  # disabled: plain load refuses
    assert r.rc == 5 and mac.state.launchd == {}
    r = await run(launchctl, mac, ["launchctl", "bootstrap", "system", paths.PLIST])
    assert (r.rc, r.err) == (119, "Bootstrap failed: 119: Service is disabled\n")
    assert (await run(launchctl, mac, ["launchctl", "load", "-w", paths.PLIST])).rc == 0
    r = await run(launchctl, mac, ["launchctl", "unload", paths.PLIST])
    assert r.rc == 0
    r = await run(launchctl, mac, ["launchctl", "unload", paths.PLIST])
    assert (r.rc, r.err) == (
        5,
        "Unload failed: 5: Input/output error\nTry running `launchctl bootout` as root for richer errors.\n",
    )


async def test_print_running_and_unknown(mac: VirtualMac) -> None:
    r = await run(launchctl, mac, ["launchctl", "print", f"system/{paths.LABEL}"], uid=501)
    assert (r.rc, r.err) == (
        113,
        f'Bad request.\nCould not find service "{paths.LABEL}" in domain for system\n',
    )
    await run(launchctl, mac, ["launchctl", "bootstrap", "system", paths.PLIST])
    r = await run(launchctl, mac, ["launchctl", "print", f"system/{paths.LABEL}"], uid=501)
    pid = mac.state.launchd[paths.LABEL]["pid"]
    assert r.rc == 0 and r.out.startswith(f"system/{paths.LABEL} = {{\n")
    assert (
        "\tstate = running\n" in r.out
        and f"\tpid = {pid}\n" in r.out
        and f"\tpath = {paths.PLIST}\n" in r.out
    )


async def test_bootout_kickstart_enable_disable(mac: VirtualMac) -> None:
    target = f"system/{paths.LABEL}"
    r = await run(launchctl, mac, ["launchctl", "kickstart", "-k", target])
    assert (r.rc, r.err) == (113, f'Could not find service "{paths.LABEL}" in domain for system\n')
    await run(launchctl, mac, ["launchctl", "bootstrap", "system", paths.PLIST])
    pid = mac.state.launchd[paths.LABEL]["pid"]
    r = await run(launchctl, mac, ["launchctl", "kickstart", "-kp", target])
    new = mac.state.launchd[paths.LABEL]["pid"]
    assert r.rc == 0 and new != pid and r.out == f"service spawned with pid: {new}\n"
    r = await run(launchctl, mac, ["launchctl", "kickstart", "-k", target], uid=501)
    assert r.rc == 1 and "Operation not permitted" in r.err
    r = await run(launchctl, mac, ["launchctl", "bootout", target], uid=501)
    assert (r.rc, r.err) == (1, "Boot-out failed: 1: Operation not permitted\n")
    assert (await run(launchctl, mac, ["launchctl", "bootout", target])).rc == 0
    r = await run(launchctl, mac, ["launchctl", "bootout", target])
    assert (r.rc, r.err) == (113, "Boot-out failed: 113: Could not find specified service\n")
    assert (await run(launchctl, mac, ["launchctl", "disable", target])).rc == 0
    assert launchd.is_disabled(mac, paths.LABEL)
    assert (await run(launchctl, mac, ["launchctl", "enable", target])).rc == 0
    assert not launchd.is_disabled(mac, paths.LABEL)
    r = await run(launchctl, mac, ["launchctl", "print", "gui/501/com.x"])
    assert (r.rc, r.err) == (113, "Could not find domain for user gui: 501\n")


async def test_usage_and_bad_plists(mac: VirtualMac) -> None:
    r = await run(launchctl, mac, ["launchctl", "frob"])
    assert r.rc == 64 and r.err.startswith("Unrecognized subcommand: frob\nUsage: launchctl")
    r = await run(launchctl, mac, ["launchctl", "print"])
    assert (r.rc, r.err) == (64, "Usage: launchctl print <domain-target> | <service-target>\n")
    mac.fs.write_text("/Library/LaunchDaemons/broken.plist", "not a plist")
    r = await run(launchctl, mac, ["launchctl", "bootstrap", "system", "/Library/LaunchDaemons/broken.plist"])
    assert (r.rc, r.err) == (109, "Bootstrap failed: 109: Invalid property list\n")
    r = await run(launchctl, mac, ["launchctl", "bootstrap", "system", "/Library/LaunchDaemons/none.plist"])
    assert (r.rc, r.err) == (2, "Bootstrap failed: 2: No such file or directory\n")


async def test_unstartable_program_listed_with_exit_status(tmp_path: Path) -> None:
    mac = make_mac(tmp_path, arch="arm64", rosetta=False)
    apply_package(mac, read_pkg(build_pkg("8.0.1.23")), "x.pkg")
    assert (await run(launchctl, mac, ["launchctl", "load", "-w", paths.PLIST])).rc == 0
    assert f"-\t78\t{paths.LABEL}" in (await run(launchctl, mac, ["launchctl", "list"])).out
    out = (await run(launchctl, mac, ["launchctl", "print", f"system/{paths.LABEL}"])).out
    assert (
        "\tstate = not running\n" in out and "last exit code = 78: EX_CONFIG" in out and "\tpid =" not in out
    )


async def test_boot_loads_enabled_runatload_daemons(mac: VirtualMac) -> None:
    mac.state.launchd = {"stale": {"label": "stale"}}
    assert launchd.boot(mac) == [paths.LABEL]
    assert set(mac.state.launchd) == {paths.LABEL} and mac.state.launchd[paths.LABEL]["pid"] is not None
    launchd.set_disabled(mac, paths.LABEL, True)
    assert launchd.boot(mac) == [] and mac.state.launchd == {}
