"""The registries the shell reads: the macOS tools of the 1E rollout and the 1E artifacts' programs."""

from __future__ import annotations

from macsim.client1e.hdiutil import hdiutil
from macsim.client1e.installer import installer
from macsim.client1e.launchctl import launchctl
from macsim.client1e.lsof import lsof
from macsim.client1e.pkgutil import pkgutil
from macsim.client1e.rosetta import softwareupdate
from macsim.client1e.scripts import client_binary, install_sh, uninstall_sh, updateconf_sh
from macsim.shell.proc import Tool

TOOLS: dict[str, Tool] = {
    "hdiutil": hdiutil,
    "installer": installer,
    "pkgutil": pkgutil,
    "launchctl": launchctl,
    "lsof": lsof,
    "softwareupdate": softwareupdate,
}
SCRIPTS: dict[str, Tool] = {
    "install.sh": install_sh,
    "uninstall.sh": uninstall_sh,
    "1E.Client.updateconf.sh": updateconf_sh,
    "1E.Client": client_binary,
}
