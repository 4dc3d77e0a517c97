"""The `switch_rejects_versions` fault: a client of a listed version starts but is turned away by the
Switch (logged as an error, not connected); other versions connect as before."""

from __future__ import annotations

from pathlib import Path

from macsim.client1e import daemon, paths
from tests.macsim.test_client1e_daemon import HOST, _install
from tests.macsim.test_client1e_support import add_cert, add_identity, make_ca, make_leaf, make_mac


def test_a_rejected_version_runs_but_does_not_connect_and_another_does(tmp_path: Path) -> None:
    mac = make_mac(tmp_path)
    _install(mac)
    ca = make_ca()
    add_cert(mac, ca.cert, trusted=True)
    add_identity(mac, make_leaf(ca, HOST), allow_all=True)
    mac.spec.faults.switch_rejects_versions = ["8.0.1.23"]
    v = daemon.run(mac)
    assert (v.running, v.connected, v.reason) == (True, False, "switch-rejected")
    assert "ERROR" in mac.fs.read_text(paths.CLIENT_LOG).splitlines()[-1]
    _install(mac, "8.1.0.7")
    assert daemon.run(mac).connected
