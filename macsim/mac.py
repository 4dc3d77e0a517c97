"""One virtual Mac: its spec, file system, keychain, launchd, mounts, command log and fault knobs.

State that must survive a simulated reboot lives on disk under the host's state directory; the rest
(running exec sessions) is in memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from macsim.keychain import SYSTEM_KEYCHAIN, Keychain, load_pem_certificates
from macsim.spec import HostSpec
from macsim.vfs import VirtualFS, rewrite

# Where each emulated tool lives on macOS. The file there is a stub ("#!macsim-tool NAME") that the
# shell dispatches on, so PATH lookup, `test -x` and `command -v` behave as on a Mac.
TOOL_PATHS: dict[str, str] = {
    "sh": "/bin/sh", "zsh": "/bin/zsh", "bash": "/bin/bash",
    "cat": "/bin/cat", "rm": "/bin/rm", "mkdir": "/bin/mkdir", "mv": "/bin/mv", "cp": "/bin/cp",
    "chmod": "/bin/chmod", "ls": "/bin/ls", "test": "/bin/test", "[": "/bin/[", "echo": "/bin/echo",
    "sleep": "/bin/sleep", "kill": "/bin/kill", "hostname": "/bin/hostname", "launchctl": "/bin/launchctl",
    "df": "/bin/df", "ln": "/bin/ln", "rmdir": "/bin/rmdir", "pwd": "/bin/pwd", "date": "/bin/date",
    "printf": "/usr/bin/printf", "true": "/usr/bin/true", "false": "/usr/bin/false",
    "tail": "/usr/bin/tail", "head": "/usr/bin/head", "grep": "/usr/bin/grep", "tr": "/usr/bin/tr",
    "xargs": "/usr/bin/xargs", "mktemp": "/usr/bin/mktemp", "shasum": "/usr/bin/shasum",
    "wc": "/usr/bin/wc", "id": "/usr/bin/id", "whoami": "/usr/bin/whoami", "sudo": "/usr/bin/sudo",
    "security": "/usr/bin/security", "hdiutil": "/usr/bin/hdiutil", "sw_vers": "/usr/bin/sw_vers",
    "uname": "/usr/bin/uname", "arch": "/usr/bin/arch", "env": "/usr/bin/env", "touch": "/usr/bin/touch",
    "stat": "/usr/bin/stat", "basename": "/usr/bin/basename", "dirname": "/usr/bin/dirname",
    "sed": "/usr/bin/sed", "cut": "/usr/bin/cut", "sort": "/usr/bin/sort", "uniq": "/usr/bin/uniq",
    "find": "/usr/bin/find", "base64": "/usr/bin/base64", "plutil": "/usr/bin/plutil",
    "installer": "/usr/sbin/installer", "pkgutil": "/usr/sbin/pkgutil", "scutil": "/usr/sbin/scutil",
    "softwareupdate": "/usr/sbin/softwareupdate", "sysctl": "/usr/sbin/sysctl",
    "ioreg": "/usr/sbin/ioreg",
    "lsof": "/usr/sbin/lsof",
}
TOOL_MAGIC = b"#!macsim-tool "


@dataclass
class CommandRecord:
    """One exec request as the SSH server received it. stdin is never logged (it may carry secrets)."""

    seq: int
    started: float
    ended: float | None
    user: str
    command: str
    exit_status: int | None = None


@dataclass
class MacState:
    """Persistent, non-file state (survives a reboot)."""

    launchd: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> job record
    mounts: dict[str, dict[str, Any]] = field(default_factory=dict)  # mount point -> {image, device}
    rosetta: bool = False
    next_pid: int = 400
    booted_at: float = field(default_factory=time.time)


class VirtualMac:
    """A simulated Mac. Tools get it through `Proc.mac`."""

    def __init__(self, spec: HostSpec, state_dir: Path) -> None:
        self.spec = spec
        self.state_dir = state_dir
        self.root = state_dir / "root"
        fresh = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        self.fs = VirtualFS(self.root, state_dir / "owners.json")
        self._state_file = state_dir / "state.json"
        self.state = self._load_state()
        self.commands: list[CommandRecord] = []
        self._cmdlog = state_dir / "commands.jsonl"
        self.lock = asyncio.Lock()  # serialises tools that mutate global state (installer, launchctl)
        if fresh:
            self.fs.create_skeleton(spec.user, spec.uid)
            self.state.rosetta = spec.arch == "arm64" and spec.rosetta
            self._install_tool_stubs()
            self.save_state()
        self.keychain = Keychain(self._read_keychain(), self._write_keychain)
        for ca_file in spec.trusted_cas:  # as an MDM configuration profile leaves them (idempotent)
            self.keychain.trust_as_profile(load_pem_certificates(Path(ca_file).read_bytes()))

    # ---- identity ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def hostname(self) -> str:
        return self.spec.hostname

    def free_bytes(self) -> int:
        """Free space on the boot volume: the spec's budget minus what the host's files use."""
        used = _bytes_under(str(self.root))
        return max(0, self.spec.free_space_mb * 1024 * 1024 - used)

    # ---- persistence ------------------------------------------------------------------------------
    def _load_state(self) -> MacState:
        if self._state_file.exists():
            return MacState(**json.loads(self._state_file.read_text()))
        return MacState()

    def save_state(self) -> None:
        rewrite(self._state_file, json.dumps(asdict(self.state), indent=1).encode())

    def _read_keychain(self) -> bytes | None:
        p = self.fs.real(SYSTEM_KEYCHAIN)
        return p.read_bytes() if p.exists() else None

    def _write_keychain(self, data: bytes) -> None:
        real = self.fs.real(SYSTEM_KEYCHAIN)  # root's, like every file nobody else created
        rewrite(real, data)
        os.chmod(real, 0o644)

    def _install_tool_stubs(self) -> None:
        # Hard links to one template per fleet directory: 25x cheaper than writing ~60 files per host,
        # which matters for fleets of 1000. Stubs are never modified in place (writers replace files).
        template = self.state_dir.parent / ".tool-stubs"
        template.mkdir(exist_ok=True)
        for name, path in TOOL_PATHS.items():
            src = template / ("stub-" + name.replace("[", "lbracket"))
            if not src.exists():
                tmp = src.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(TOOL_MAGIC + name.encode() + b"\n")
                os.chmod(tmp, 0o755)
                os.replace(tmp, src)
            dst = self.fs.real(path)
            try:
                os.link(src, dst)
            except OSError:  # another file system, or no hard links: copy
                self.fs.write_bytes(path, src.read_bytes(), mode=0o755)

    def alloc_pid(self) -> int:
        # Not persisted on its own: a pid is cheap to reuse after a reboot, a file write per exec is not.
        self.state.next_pid += 1
        return self.state.next_pid

    # ---- command log ------------------------------------------------------------------------------
    def log_start(self, user: str, command: str) -> CommandRecord:
        rec = CommandRecord(
            seq=len(self.commands) + 1, started=time.time(), ended=None, user=user, command=command
        )
        self.commands.append(rec)
        return rec

    def log_end(self, rec: CommandRecord, exit_status: int) -> None:
        rec.ended = time.time()
        rec.exit_status = exit_status
        with self._cmdlog.open("a") as f:
            f.write(json.dumps(asdict(rec)) + "\n")

    def wipe(self) -> None:
        """Remove all of this host's state (tests and benchmarks clean up with it)."""
        shutil.rmtree(self.state_dir, ignore_errors=True)


def _bytes_under(top: str) -> int:
    """Bytes of the regular files below top (symlinks not followed); scandir, as this runs on every upload."""
    total = 0
    stack = [top]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed while we walked
    return total
