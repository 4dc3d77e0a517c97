"""The programs inside the 1E artifacts, run by the shell from files marked `#!macsim-script NAME`:
install.sh and uninstall.sh (DMG scripts/ folder), 1E.Client.updateconf.sh and the 1E.Client binary.

argv[0] is the script's path as invoked (for `sh FILE args`, FILE). Scripts call installer/launchctl
directly (the tool functions with a derived Proc), not through the shell.

Behaviour follows the 1E macOS guide: install.sh needs the .pkg in its own directory ("copy the script to a
separate directory together with the package"), installs, configures and starts the client; with no
parameters it upgrades and keeps the existing configuration; uninstall.sh stops the client, removes the
receipt's files and forgets the receipt; updateconf.sh maps installer property names onto conf keys.
Messages of these scripts are our own wording (the real scripts are not public).
"""

from __future__ import annotations

import dataclasses
import posixpath
import re

from macsim.client1e import conf as confmod
from macsim.client1e import daemon, launchd, paths, receipts
from macsim.client1e.installer import install
from macsim.client1e.launchctl import launchctl
from macsim.shell.proc import Proc
from macsim.shell.resolve import fault, hang_forever
from macsim.vfs import VfsError

_SWITCH = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}$")
_URL = re.compile(r"^https?://\S+$")
INSTALL_USAGE = (
    "Usage: install.sh <switch:port> <background channel url>\n"
    "       install.sh            (upgrade: keeps the existing configuration)\n"
    "Example: sudo ./install.sh tachyon.acme.local:4000 https://tachyon.acme.local/Background"
)


def _sub(p: Proc, argv: list[str]) -> Proc:
    return dataclasses.replace(p, argv=argv)


def _find_pkg(p: Proc, directory: str) -> str | None:
    real = p.mac.fs.real(directory)
    if not real.is_dir():
        return None
    found = [
        f.name
        for f in real.iterdir()
        if f.name.startswith(paths.PKG_PREFIX)
        and f.name.endswith(".pkg")
        # a symlink is followed inside the Mac's file system (its target is a macOS path), as macOS would
        and p.mac.fs.real(posixpath.join(directory, f.name)).is_file()
    ]
    if not found:
        return None
    found.sort(key=lambda n: paths.version_key(n.removeprefix(paths.PKG_PREFIX).removesuffix(".pkg")))
    return posixpath.join(directory, found[-1])


def _valid_switch(value: str) -> bool:
    return all(_SWITCH.match(s.strip()) for s in value.split(";"))


def _valid_url(value: str) -> bool:
    return all(_URL.match(s.strip()) for s in value.split(";"))


async def install_sh(p: Proc) -> int:
    """install.sh [SWITCH:PORT BACKGROUND_URL]: install or upgrade, configure, start. Root required."""
    args = p.argv[1:]
    if p.uid != 0:
        p.err("install.sh: must be run as root (sudo ./install.sh ...)")
        return 1
    if len(args) not in (0, 2):
        p.err(INSTALL_USAGE)
        return 1
    mac = p.mac
    here = posixpath.dirname(p.path(p.argv[0]))
    pkg = _find_pkg(p, here)
    if pkg is None:
        p.err(f"install.sh: no {paths.PKG_PREFIX}*.pkg found in {here}")
        p.err("install.sh: copy install.sh into the same directory as the package and run it from there")
        return 1
    old = confmod.parse_conf(mac.fs.read_text(paths.CONF)) if mac.fs.exists(paths.CONF) else {}
    if args:
        switch, url = args
        if not _valid_switch(switch):
            p.err(f"install.sh: invalid Switch '{switch}' (expected host:port, several separated by ';')")
            return 1
        if not _valid_url(url):
            p.err(f"install.sh: invalid Background Channel URL '{url}' (expected https://...)")
            return 1
        values = {"Switch": switch, "BackgroundChannelUrl": url}
    elif old.get("Switch") and old.get("BackgroundChannelUrl"):
        values = dict(old)  # upgrade: every existing setting is kept
        p.out(f"Upgrading: keeping the existing configuration (Switch={old['Switch']})")
    else:
        p.err("install.sh: no existing configuration to upgrade; give the Switch and Background Channel URL")
        p.err(INSTALL_USAGE)
        return 1
    if launchd.job(mac, paths.LABEL) is not None:
        p.out("Stopping the 1E Client")
        await launchctl(_sub(p, ["launchctl", "unload", paths.PLIST]))
    p.out(f"Installing {posixpath.basename(pkg)}")
    sub = _sub(p, ["installer", "-pkg", pkg, "-target", "/"])
    forced = fault(sub)  # the fault knobs apply to the installer the script runs, as to any other
    if forced == -1:
        return await hang_forever()
    rc = forced if forced is not None else await install(sub, pkg, "/")
    if rc != 0:
        p.err("install.sh: installation failed")
        return rc
    text = mac.fs.read_text(paths.CONF)
    mac.fs.write_text(paths.CONF, confmod.update_conf(text, values))
    p.out(f"Configured {paths.CONF}")
    rc = await launchctl(_sub(p, ["launchctl", "load", "-w", paths.PLIST]))
    if rc != 0:
        p.err("install.sh: could not start the 1E Client")
        return rc
    p.out("Started the 1E Client")
    return 0


async def uninstall_sh(p: Proc) -> int:
    """uninstall.sh: stop the client, remove the receipt's files and the receipt. Root required."""
    if p.uid != 0:
        p.err("uninstall.sh: must be run as root (sudo ./uninstall.sh)")
        return 1
    if len(p.argv) > 1:
        p.err("Usage: uninstall.sh")
        return 1
    mac = p.mac
    if launchd.job(mac, paths.LABEL) is not None:
        p.out("Stopping the 1E Client")
        await launchctl(_sub(p, ["launchctl", "unload", paths.PLIST]))
    r = receipts.read_receipt(mac.fs, paths.PKG_ID)
    if r is None:
        p.out("The 1E Client is not installed (no receipt); nothing to remove")
    else:
        base = "/" + r.prefix.strip("/")
        async with mac.lock:
            for e in r.entries:
                path = posixpath.join(base, e.path)
                if not e.is_dir and mac.fs.exists(path):
                    mac.fs.real(path).unlink()
                    mac.fs.forget(path)
            # the 1E folders go when empty; shared folders (Application Support, LaunchDaemons) stay
            for e in sorted(
                (e for e in r.entries if e.is_dir and "1E" in e.path), key=lambda e: -len(e.path)
            ):
                real = mac.fs.real(posixpath.join(base, e.path))
                if real.is_dir() and not any(real.iterdir()):
                    real.rmdir()
                    mac.fs.forget(posixpath.join(base, e.path))
            receipts.forget_receipt(mac.fs, paths.PKG_ID)
        p.out(f"Forgot package '{paths.PKG_ID}' on '/'.")
    if mac.fs.exists(paths.PLIST):
        mac.fs.real(paths.PLIST).unlink()
        mac.fs.forget(paths.PLIST)
    p.out("The 1E Client has been uninstalled")
    return 0


async def updateconf_sh(p: Proc) -> int:
    """1E.Client.updateconf.sh CONF PROPERTY=value...: set conf keys from installer property names."""
    name = posixpath.basename(p.argv[0]) or "1E.Client.updateconf.sh"
    args = p.argv[1:]
    if len(args) < 2:
        p.err(f"Usage: {name} <path to 1E.Client.conf> PROPERTY=value [PROPERTY=value ...]")
        p.err(f"Properties: {', '.join(confmod.PROPERTIES)}")
        return 1
    conf_path = p.path(args[0])
    values: dict[str, str] = {}
    for pair in args[1:]:
        if "=" not in pair:
            p.err(f"{name}: expected PROPERTY=value, got '{pair}'")
            return 1
        prop, value = pair.split("=", 1)
        key = confmod.property_key(prop)
        if key is None:
            p.err(f"{name}: unknown property '{prop}'")
            return 1
        if key == "LoggingLevel":
            level = next((lv for lv in confmod.LOGGING_LEVELS if lv.lower() == value.lower()), None)
            if level is None:
                p.err(f"{name}: invalid LOGGINGLEVEL '{value}' (one of {', '.join(confmod.LOGGING_LEVELS)})")
                return 1
            value = level
        values[key] = value
    try:
        p.mac.fs.check_read(conf_path, p.uid)
        p.mac.fs.check_write(conf_path, p.uid)
    except VfsError as e:
        p.err(f"{name}: {args[0]}: {e.strerror}")
        return 1
    text = p.mac.fs.read_text(conf_path)
    p.mac.fs.write_text(conf_path, confmod.update_conf(text, values))
    return 0


async def client_binary(p: Proc) -> int:
    """The 1E.Client executable run by hand: `-v`/`--version` prints the version. On arm64 without
    Rosetta the exec fails as zsh reports it (exit 126). Without arguments it refuses: it is a daemon that
    launchd starts."""
    try:
        data = p.mac.fs.read_bytes(p.path(p.argv[0]))
    except (VfsError, OSError):
        data = p.mac.fs.read_bytes(paths.BINARY) if p.mac.fs.exists(paths.BINARY) else b""
    info = daemon.binary_info(data)
    if daemon.needs_rosetta(p.mac, info.get("arch", "x86_64")):
        p.err(f"zsh: bad CPU type in executable: {p.argv[0]}")
        return 126
    args = p.argv[1:]
    if args in (["-v"], ["--version"]):
        p.out(f"1E Client v{info.get('version', 'unknown')}")
        return 0
    if args in (["-h"], ["--help"]):
        p.out(
            "Usage: 1E.Client [-v|--version]\nThe 1E Client runs as a daemon: "
            f"sudo launchctl load -w {paths.PLIST}"
        )
        return 0
    if args:
        p.err(f"1E.Client: unknown option '{args[0]}'")
        return 1
    p.err(f"1E.Client: runs as a daemon; start it with: sudo launchctl load -w {paths.PLIST}")
    return 1
