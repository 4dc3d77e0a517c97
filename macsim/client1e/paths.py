"""Where the 1E Client lives on a Mac and the names it is known by (from the 1E macOS install guide)."""

from __future__ import annotations

PKG_ID = "com.1e.pkg.1E.Client"
LABEL = "com.1e.pkg.1E.Client"
INSTALL_LOCATION = "/Library"  # the pkg's install-location: receipt paths are relative to it
CLIENT_DIR = "/Library/Application Support/1E/Client"
BINARY = f"{CLIENT_DIR}/1E.Client"
CONF = f"{CLIENT_DIR}/1E.Client.conf"
UPDATECONF = f"{CLIENT_DIR}/1E.Client.updateconf.sh"
PLIST = f"/Library/LaunchDaemons/{LABEL}.plist"
CLIENT_LOG = "/Library/Logs/1E.Client.log"
DAEMON_LOG = "/Library/Logs/1E.Client.Daemon.log"
RECEIPTS_DIR = "/private/var/db/receipts"
# launchd keeps `launchctl enable/disable` and `load -w`/`unload -w` overrides here (survives reboot).
LAUNCHD_OVERRIDES = "/private/var/db/com.apple.xpc.launchd/disabled.plist"
LAUNCH_DAEMONS = "/Library/LaunchDaemons"

# The pkg and DMG file names the 1E download carries.
PKG_PREFIX = "1e.client-macOS_v"


def pkg_name(version: str) -> str:
    return f"{PKG_PREFIX}{version}.pkg"


def dmg_name(version: str) -> str:
    return f"{PKG_PREFIX}{version}.dmg"


def volume_name(version: str) -> str:
    return f"image.{PKG_PREFIX}{version}"


def version_key(version: str) -> tuple[int, ...]:
    """Sort key for dotted versions like 8.0.1.23 (non-numeric parts sort as 0)."""
    return tuple(int(x) if x.isdigit() else 0 for x in version.split("."))
