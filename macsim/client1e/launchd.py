"""launchd's system domain on the virtual Mac: loaded jobs, their processes, enable/disable overrides, boot.

Loaded jobs live in `mac.state.launchd` (label -> record, survives in state.json); the disabled overrides
live where launchd keeps them, /private/var/db/com.apple.xpc.launchd/disabled.plist. Starting the 1E
Client's job runs the daemon judgement (macsim.client1e.daemon) synchronously; a job whose program cannot be
spawned keeps no PID and records exit status 78, as `launchctl list` shows it (`-  78  label`).
"""

from __future__ import annotations

import plistlib
import posixpath
import shutil
from dataclasses import dataclass
from typing import Any

from macsim.client1e import daemon, paths
from macsim.mac import VirtualMac
from macsim.vfs import VfsError


class LaunchdError(Exception):
    """A launchd failure with its errno-like code and text (`Bootstrap failed: <code>: <text>`)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


EIO = LaunchdError(5, "Input/output error")
EPERM = LaunchdError(1, "Operation not permitted")
ENOENT = LaunchdError(2, "No such file or directory")
EDISABLED = LaunchdError(119, "Service is disabled")
ENOSERVICE = LaunchdError(113, "Could not find specified service")
EINVAL_PLIST = LaunchdError(109, "Invalid property list")


@dataclass(frozen=True)
class JobSpec:
    label: str
    args: list[str]
    run_at_load: bool
    keep_alive: bool
    path: str
    disabled_key: bool  # the plist's own `Disabled` key (overrides take precedence)


def read_job(mac: VirtualMac, path: str) -> JobSpec:
    """Parse a launchd plist. Raises LaunchdError (ENOENT, or 109 for an invalid property list)."""
    try:
        data = mac.fs.read_bytes(path)
    except (VfsError, OSError):
        raise ENOENT from None
    try:
        d = plistlib.loads(data)
        label = d["Label"]
        args = d.get("ProgramArguments") or ([d["Program"]] if "Program" in d else [])
        if not isinstance(label, str) or not args or not all(isinstance(a, str) for a in args):
            raise ValueError("Label and ProgramArguments are required")
    except Exception:
        raise EINVAL_PLIST from None
    ka = d.get("KeepAlive", False)
    return JobSpec(
        label, list(args), bool(d.get("RunAtLoad", False)), bool(ka), path, bool(d.get("Disabled", False))
    )


# ---- overrides ----------------------------------------------------------------------------------------
def overrides(mac: VirtualMac) -> dict[str, bool]:
    """label -> disabled, from launchd's override database."""
    if not mac.fs.exists(paths.LAUNCHD_OVERRIDES):
        return {}
    try:
        d = plistlib.loads(mac.fs.read_bytes(paths.LAUNCHD_OVERRIDES))
    except Exception:
        return {}
    return {str(k): bool(v) for k, v in d.items()}


def set_disabled(mac: VirtualMac, label: str, disabled: bool) -> None:
    d = overrides(mac)
    d[label] = disabled
    mac.fs.makedirs(posixpath.dirname(paths.LAUNCHD_OVERRIDES))
    mac.fs.write_bytes(paths.LAUNCHD_OVERRIDES, plistlib.dumps(d), mode=0o644)


def is_disabled(mac: VirtualMac, label: str, disabled_key: bool = False) -> bool:
    return overrides(mac).get(label, disabled_key)


# ---- jobs -----------------------------------------------------------------------------------------------
def job(mac: VirtualMac, label: str) -> dict[str, Any] | None:
    return mac.state.launchd.get(label)


def find_by_path(mac: VirtualMac, path: str) -> dict[str, Any] | None:
    c = mac.fs.canonical(path)
    return next((j for j in mac.state.launchd.values() if mac.fs.canonical(j["path"]) == c), None)


def load(mac: VirtualMac, spec: JobSpec, force: bool = False) -> dict[str, Any]:
    """Bootstrap a job into the system domain and start it when RunAtLoad/KeepAlive.
    Raises LaunchdError: EIO when the label is already loaded, EDISABLED when disabled (unless force)."""
    if spec.label in mac.state.launchd:
        raise EIO
    if not force and is_disabled(mac, spec.label, spec.disabled_key):
        raise EDISABLED
    rec: dict[str, Any] = {
        "label": spec.label,
        "path": spec.path,
        "program": spec.args[0],
        "args": spec.args,
        "run_at_load": spec.run_at_load,
        "keep_alive": spec.keep_alive,
        "pid": None,
        "last_exit": None,
        "runs": 0,
        "verdict": None,
    }
    mac.state.launchd[spec.label] = rec
    if spec.run_at_load or spec.keep_alive:
        start(mac, spec.label)
    mac.save_state()
    return rec


def start(mac: VirtualMac, label: str) -> dict[str, Any]:
    """Spawn the job's program (a no-op when it already runs). Raises LaunchdError(ENOSERVICE)."""
    rec = mac.state.launchd.get(label)
    if rec is None:
        raise ENOSERVICE
    if rec["pid"] is not None:
        return rec
    rec["runs"] += 1
    if label == paths.LABEL:
        v = daemon.run(mac)
        rec["verdict"] = v.as_dict()
        ok = v.running
    else:
        ok = mac.fs.exists(rec["program"])
    if ok:
        rec["pid"] = mac.alloc_pid()
    else:
        rec["pid"] = None
        rec["last_exit"] = daemon.SPAWN_FAILED
    mac.save_state()
    return rec


def stop(mac: VirtualMac, label: str) -> None:
    """SIGTERM the job's process; it exits 0 (a clean shutdown)."""
    rec = mac.state.launchd.get(label)
    if rec is None:
        raise ENOSERVICE
    if rec["pid"] is not None:
        rec["pid"] = None
        rec["last_exit"] = 0
        if label == paths.LABEL:
            daemon.append_log(mac, paths.CLIENT_LOG, "INFO", "1E Client stopping (SIGTERM)")
    mac.save_state()


def restart(mac: VirtualMac, label: str) -> dict[str, Any]:
    """`kickstart -k`: kill the running instance (if any) and start it again."""
    stop(mac, label)
    return start(mac, label)


def unload(mac: VirtualMac, label: str) -> None:
    """Stop and remove a job from the system domain. Raises LaunchdError(ENOSERVICE)."""
    stop(mac, label)
    del mac.state.launchd[label]
    mac.save_state()


def boot(mac: VirtualMac) -> list[str]:
    """After a simulated reboot: no process survives, disk images are detached, and every job in
    /Library/LaunchDaemons that is not disabled is loaded again (started when RunAtLoad/KeepAlive).
    Returns the labels loaded. Unreadable plists are skipped, as launchd skips them."""
    mac.state.launchd = {}
    for mount in list(mac.state.mounts):
        real = mac.fs.real(mount)
        if real.exists():
            shutil.rmtree(real, ignore_errors=True)
        mac.fs.forget(mount)
    mac.state.mounts = {}
    loaded: list[str] = []
    base = mac.fs.real(paths.LAUNCH_DAEMONS)
    for f in sorted(base.iterdir()) if base.is_dir() else []:
        if not f.name.endswith(".plist"):
            continue
        try:
            spec = read_job(mac, f"{paths.LAUNCH_DAEMONS}/{f.name}")
            load(mac, spec)
            loaded.append(spec.label)
        except LaunchdError:
            continue
    mac.save_state()
    return loaded
