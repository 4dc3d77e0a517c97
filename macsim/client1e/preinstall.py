"""A 1E Client already on the Mac when the fleet starts (spec `installed_client`), for upgrade tests.

Called by macsim.fleet on a fresh host, before boot: it lays down the package of that version as `installer`
would, then writes Switch and BackgroundChannelUrl into the conf as install.sh would. The LaunchDaemon plist
is in place, so `launchd.boot` starts the client; `running=False` leaves it disabled (as after
`launchctl unload -w`), so boot does not start it.
"""

from __future__ import annotations

from macsim.client1e import conf, launchd, paths
from macsim.client1e.installer import apply_package
from macsim.client1e.pkg import build_pkg, read_pkg
from macsim.mac import VirtualMac


def preinstall(mac: VirtualMac, version: str, switch: str, background_url: str, running: bool = True) -> None:
    """Install the 1E Client `version` configured for switch/background_url (no daemon start here)."""
    pkg = read_pkg(build_pkg(version))
    apply_package(mac, pkg, paths.pkg_name(version))
    text = mac.fs.read_text(paths.CONF)
    mac.fs.write_text(
        paths.CONF, conf.update_conf(text, {"Switch": switch, "BackgroundChannelUrl": background_url})
    )
    if not running:
        launchd.set_disabled(mac, paths.LABEL, True)
