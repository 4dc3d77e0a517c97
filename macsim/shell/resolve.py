"""Finding a command file and what every command may need when it cannot start: PATH search, permission
checks, ExecError, the fault knobs, the 1E script mark. Imports nothing above `proc`: commands import it
freely; launching a found file is `macsim.shell.launch`."""

from __future__ import annotations

import asyncio
import errno
import re
from typing import Literal

from macsim.shell.proc import Proc
from macsim.vfs import VfsError

DEFAULT_PATH = "/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin"
_SCRIPT_MARK = re.compile(rb"^#!?\s*macsim-script\s+(\S+)")


class ExecError(Exception):
    """A command could not be started. kind: `notfound` (no such command in PATH), `enoent` (a path that
    does not exist), `eacces` (not executable / not readable), `noexec` (not a format we can run)."""

    def __init__(self, kind: Literal["notfound", "enoent", "eacces", "noexec"], name: str) -> None:
        super().__init__(f"{name}: {kind}")
        self.kind = kind
        self.name = name

    @property
    def strerror(self) -> str:
        """The C library's message for this failure ("No such file or directory", ...)."""
        return {
            "notfound": "command not found",
            "enoent": "No such file or directory",
            "eacces": "Permission denied",
            "noexec": "Exec format error",
        }[self.kind]

    @property
    def status(self) -> int:
        """The shell's exit status for it: 127 not found, 126 found but not runnable."""
        return 127 if self.kind in ("notfound", "enoent") else 126


def resolve(p: Proc, name: str) -> str:
    """The absolute path of the file `name` runs, as seen by uid `p.uid`. A name with a `/` is a path;
    otherwise PATH (from `p.env`) is searched for an executable file. Raises ExecError."""
    fs = p.mac.fs
    if "/" in name:
        path = fs.normalize(name, p.cwd)
        try:
            fs.check_exec(path, p.uid)
        except VfsError as e:
            raise ExecError("enoent" if e.errno == errno.ENOENT else "eacces", name) from None
        return path
    for d in p.env.get("PATH", DEFAULT_PATH).split(":"):
        cand = fs.normalize(name, fs.normalize(d or ".", p.cwd))
        try:
            fs.check_exec(cand, p.uid)
        except VfsError:
            continue
        return cand
    raise ExecError("notfound", name)


def fault(p: Proc) -> int | None:
    """The fault knobs, read live: None when the command runs normally, else its forced exit status.
    A hanging tool never returns (the caller's task is cancelled when the channel closes)."""
    faults = p.mac.spec.faults
    if p.name in faults.hang_tools:
        return -1
    if p.name in faults.fail_tools:
        p.err(f"{p.name}: simulated failure")
        return faults.fail_tools[p.name]
    return None


async def hang_forever() -> int:
    """Wait until cancelled."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def script_mark(head: bytes) -> str | None:
    """The 1E program a file holds (`#!macsim-script NAME` on one of its first two lines), else None."""
    for line in head.split(b"\n")[:2]:
        m = _SCRIPT_MARK.match(line)
        if m:
            return m.group(1).decode()
    return None
