"""Each verdict of the 1E Client daemon's judgement, and its logs."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from macsim.client1e import daemon, launchd, paths
from macsim.client1e.conf import update_conf
from macsim.client1e.installer import apply_package
from macsim.client1e.pkg import build_pkg, read_pkg
from macsim.mac import VirtualMac
from tests.macsim.test_client1e_support import add_cert, add_identity, make_ca, make_leaf, make_mac

HOST = "lab-mac-01.local"


def _install(mac: VirtualMac, version: str = "8.0.1.23", configure: bool = True) -> None:
    apply_package(mac, read_pkg(build_pkg(version)), "x.pkg")
    if configure:
        values = {
            "Switch": "sw1.lab.test:4000;sw2.lab.test:4000",
            "BackgroundChannelUrl": "https://sw1.lab.test/Bg",
        }
        mac.fs.write_text(paths.CONF, update_conf(mac.fs.read_text(paths.CONF), values))


@pytest.fixture
def mac(tmp_path: Path) -> VirtualMac:
    m = make_mac(tmp_path)
    _install(m)
    return m


def test_binary_missing_and_bad_cpu(tmp_path: Path) -> None:
    bare = make_mac(tmp_path / "a")
    v = daemon.judge(bare)
    assert (v.running, v.reason) == (False, "binary-missing")
    arm = make_mac(tmp_path / "b", arch="arm64", rosetta=False)
    _install(arm)
    v = daemon.run(arm)
    assert (v.running, v.connected, v.reason) == (False, False, "bad-cpu")
    assert "Bad CPU type in executable" in arm.fs.read_text(paths.DAEMON_LOG)
    arm.state.rosetta = True
    assert daemon.judge(arm).reason == "no-identity"  # with Rosetta it runs and goes on to the keychain


def test_not_configured_runs_but_does_not_connect(tmp_path: Path) -> None:
    m = make_mac(tmp_path)
    _install(m, configure=False)
    v = daemon.run(m)
    assert (v.running, v.connected, v.reason) == (True, False, "not-configured")
    assert "Switch, BackgroundChannelUrl is empty" in m.fs.read_text(paths.CLIENT_LOG)


def test_no_identity_and_case_sensitive_cn(mac: VirtualMac) -> None:
    ca = make_ca()
    add_cert(mac, ca.cert, trusted=True)
    add_identity(mac, make_leaf(ca, HOST.upper()))
    v = daemon.run(mac)
    assert (v.running, v.connected, v.reason) == (True, False, "no-identity")
    assert f"no client certificate found matching {HOST}" in mac.fs.read_text(paths.CLIENT_LOG)


def test_connected_by_cn_logs_first_switch(mac: VirtualMac) -> None:
    ca = make_ca()
    add_cert(mac, ca.cert, trusted=True)
    add_identity(mac, make_leaf(ca, HOST))
    v = daemon.run(mac)
    assert (v.running, v.connected, v.reason) == (True, True, "connected")
    log = mac.fs.read_text(paths.CLIENT_LOG)
    assert "Connected to Switch sw1.lab.test:4000" in log and "sw2" not in log
    assert log.splitlines()[-1][:4].isdigit()  # timestamped


def test_connected_by_san_dns(mac: VirtualMac) -> None:
    ca = make_ca()
    add_cert(mac, ca.cert, trusted=True)
    add_identity(mac, make_leaf(ca, "Some Device", san=[HOST]))
    assert daemon.judge(mac).connected


def test_expired_and_server_auth_only_certificates(tmp_path: Path) -> None:
    ca = make_ca()
    for sub, leaf, reason in (
        ("x", make_leaf(ca, HOST, expired=True), "cert-expired"),
        ("y", make_leaf(ca, HOST, eku=[ExtendedKeyUsageOID.SERVER_AUTH]), "cert-not-client-auth"),
    ):
        m = make_mac(tmp_path / sub)
        _install(m)
        add_cert(m, ca.cert, trusted=True)
        add_identity(m, leaf)
        assert daemon.judge(m).reason == reason


def test_upgraded_binary_loses_key_access_until_reimport_or_allow_all(tmp_path: Path) -> None:
    ca = make_ca()
    leaf = make_leaf(ca, HOST)
    m = make_mac(tmp_path / "t")
    _install(m)
    add_cert(m, ca.cert, trusted=True)
    add_identity(m, leaf)  # -T bound to 8.0.1.23's binary
    assert daemon.judge(m).connected
    _install(m, "8.0.2.5")
    v = daemon.run(m)
    assert (v.connected, v.reason) == (False, "key-access")
    assert "The user name or passphrase you entered is not correct." in m.fs.read_text(paths.CLIENT_LOG)
    a = make_mac(tmp_path / "a")
    _install(a)
    add_cert(a, ca.cert, trusted=True)
    add_identity(a, leaf, allow_installed=False, allow_all=True)  # -A
    _install(a, "8.0.2.5")
    assert daemon.judge(a).connected


def test_untrusted_chain(mac: VirtualMac) -> None:
    ca = make_ca()
    add_cert(mac, ca.cert, trusted=False)
    add_identity(mac, make_leaf(ca, HOST))
    v = daemon.judge(mac)
    assert (v.running, v.connected, v.reason) == (True, False, "untrusted")
    assert "not trusted" in v.message


def test_launchd_start_records_verdict(mac: VirtualMac) -> None:
    launchd.load(mac, launchd.read_job(mac, paths.PLIST))
    assert mac.state.launchd[paths.LABEL]["verdict"]["reason"] == "no-identity"
    ca = make_ca()
    add_cert(mac, ca.cert, trusted=True)
    add_identity(mac, make_leaf(ca, HOST))
    launchd.restart(mac, paths.LABEL)
    assert mac.state.launchd[paths.LABEL]["verdict"]["connected"] is True
