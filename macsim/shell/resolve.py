"""Finding and launching a command file: PATH search, permission checks, and dispatch on the file's content
(`#!macsim-tool`, `#!macsim-script`, shell scripts). Shared by the shell and by tools that run commands
(sudo, xargs, env) through `Proc.runner`."""

from __future__ import annotations

import asyncio
import errno
import posixpath
import re
from typing import Literal

from macsim.mac import TOOL_MAGIC
from macsim.shell.proc import Proc
from macsim.vfs import VfsError

DEFAULT_PATH = "/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin"
_SCRIPT_MARK = re.compile(rb"^#!?\s*macsim-script\s+(\S+)")
_SHELL_SHEBANG = re.compile(
    rb"^#!\s*(?:/usr/bin/env\s+)?(?:/bin/|/usr/bin/|/usr/local/bin/)?(sh|bash|zsh)(?:\s|$)"
)


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


async def run_tool(p: Proc, tool_name: str, scripts: bool = False) -> int:
    """Run a registered tool (or 1E script) with fault knobs applied; file errors a tool lets escape
    become `NAME: PATH: message`, status 1."""
    from macsim.tools import all_scripts, all_tools

    reg = all_scripts() if scripts else all_tools()
    tool = reg.get(tool_name)
    if tool is None:
        raise ExecError("noexec", p.argv[0])
    forced = fault(p)
    if forced == -1:
        return await hang_forever()
    if forced is not None:
        return forced
    try:
        return await tool(p)
    except VfsError as e:
        p.err(f"{p.name}: {e.filename}: {e.strerror}")
        return 1


def script_mark(head: bytes) -> str | None:
    """The 1E program a file holds (`#!macsim-script NAME` on one of its first two lines), else None."""
    for line in head.split(b"\n")[:2]:
        m = _SCRIPT_MARK.match(line)
        if m:
            return m.group(1).decode()
    return None


async def run_file(p: Proc, path: str) -> int:
    """Run the executable at `path` (already resolved and permission-checked) with `p`. Dispatches on its
    content. Raises ExecError when it is not something we can run."""
    head = p.mac.fs.real(path).read_bytes()[:512]
    if head.startswith(TOOL_MAGIC):
        name = head[len(TOOL_MAGIC) :].split(b"\n", 1)[0].decode().strip()
        return await run_tool(p, name)
    script = script_mark(head)
    if script is not None:
        return await run_tool(p, script, scripts=True)
    m = _SHELL_SHEBANG.match(head)
    if m or (head and not head.startswith(b"#!") and b"\0" not in head):
        dialect = m.group(1).decode() if m else "sh"
        try:
            p.mac.fs.check_read(path, p.uid)
        except VfsError:
            p.err(f"{dialect}: {p.argv[0]}: Permission denied")
            return 126
        from macsim.shell.interp import run_script_file

        return await run_script_file(p, path, dialect)
    if head.startswith(b"#!"):
        interp = head[2:].split(b"\n", 1)[0].decode(errors="replace").strip().split(" ")[0]
        p.err(f"{posixpath.basename(interp) or interp}: bad interpreter: {interp}: No such file or directory")
        return 126
    raise ExecError("noexec", p.argv[0])


async def run_argv(p: Proc) -> int:
    """Resolve `p.argv[0]` and run it. Raises ExecError."""
    path = resolve(p, p.argv[0])
    return await run_file(p, path)
