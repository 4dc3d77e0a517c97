"""macsim's strict `lsof`: only the verify step's form; the 1E daemon's Switch socket when it is connected
(and its log dialect holds one); root needed to see a root process's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from macsim.client1e import launchd, paths
from macsim.client1e.installer import apply_package
from macsim.client1e.lsof import lsof
from macsim.client1e.pkg import build_pkg, read_pkg
from macsim.mac import VirtualMac
from tests.macsim.test_client1e_support import make_mac, run

FORM = ["lsof", "-nP", "-a", "-p", "{pid}", "-iTCP", "-sTCP:ESTABLISHED", "-Fn"]


def _argv(pid: int, form: list[str] = FORM) -> list[str]:
    return [a.replace("{pid}", str(pid)) for a in form]


@pytest.fixture
def mac(tmp_path: Path) -> VirtualMac:
    m = make_mac(tmp_path)
    apply_package(m, read_pkg(build_pkg("8.0.1.23")), "x.pkg")
    return m


def _connect(mac: VirtualMac, switch: str) -> int:
    """Pretend the daemon runs connected to `switch` (the daemon's own judgement is tested elsewhere)."""
    launchd.load(mac, launchd.read_job(mac, paths.PLIST))
    rec = mac.state.launchd[paths.LABEL]
    rec["verdict"] = {"running": True, "connected": True, "reason": "connected", "message": "", "switch": switch}
    return int(rec["pid"])


async def test_connected_daemon_shows_its_switch_socket(mac: VirtualMac) -> None:
    pid = _connect(mac, "tachyon.acme.local:4000")
    r = await run(lsof, mac, _argv(pid))
    assert r.rc == 0 and r.out.splitlines()[0] == f"p{pid}" and r.out.splitlines()[1].startswith("f")
    assert r.out.splitlines()[2].endswith("->203.0.113.10:4000")
    pid2 = _connect_again(mac, "10.1.2.3:4443")
    assert (await run(lsof, mac, _argv(pid2))).out.splitlines()[2].endswith("->10.1.2.3:4443")
    # another PID, no root, or a silent dialect: nothing listed, exit 1 (lsof(8) DIAGNOSTICS)
    assert (await run(lsof, mac, _argv(pid2 + 1))).rc == 1
    assert (await run(lsof, mac, _argv(pid2), uid=501)).rc == 1
    mac.spec.faults.client_log = "silent"
    assert (await run(lsof, mac, _argv(pid2))).rc == 1


def _connect_again(mac: VirtualMac, switch: str) -> int:
    mac.state.launchd.pop(paths.LABEL)  # as if booted out, then loaded again
    return _connect(mac, switch)


async def test_other_forms_are_usage_errors(mac: VirtualMac) -> None:
    pid = _connect(mac, "s:4000")
    for form in (
        ["lsof", "-i"],
        ["lsof", "-nP", "-a", "-p", str(pid), "-iUDP", "-sTCP:ESTABLISHED", "-Fn"],
        ["lsof", "-nP", "-a", "-p", str(pid), "-iTCP", "-sTCP:LISTEN", "-Fn"],
        ["lsof", "-nPx", "-a", "-p", str(pid), "-iTCP", "-sTCP:ESTABLISHED", "-Fn"],
        ["lsof", "-nP", "-a", "-p", str(pid), "-iTCP", "-sTCP:ESTABLISHED", "-Fz"],
        ["lsof", "-nP", "-p", str(pid), "-iTCP", "-sTCP:ESTABLISHED", "-Fn"],  # without -a: not ANDed
        ["lsof", "/etc/hosts"],
    ):
        r = await run(lsof, mac, form)
        assert r.rc == 1 and "usage:" in r.err and r.out == "", form
