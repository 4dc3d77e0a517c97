"""Launching a command file found by `resolve`: dispatch on its content (`#!macsim-tool NAME`,
`#!macsim-script NAME`, shell scripts) to the registered commands or, for a shell script, back into the
shell through `Proc.runner`. Used by the shell (`macsim.shell.interp`), which commands reach only through
`Proc.runner`."""

from __future__ import annotations

import posixpath
import re

from macsim.commands import all_scripts, all_tools
from macsim.mac import TOOL_MAGIC
from macsim.shell.proc import Proc, runner_of
from macsim.shell.resolve import ExecError, fault, hang_forever, resolve, script_mark
from macsim.vfs import VfsError

_SHELL_SHEBANG = re.compile(
    rb"^#!\s*(?:/usr/bin/env\s+)?(?:/bin/|/usr/bin/|/usr/local/bin/)?(sh|bash|zsh)(?:\s|$)"
)


async def run_tool(p: Proc, tool_name: str, scripts: bool = False) -> int:
    """Run a registered tool (or 1E script) with fault knobs applied; file errors a tool lets escape
    become `NAME: PATH: message`, status 1."""
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
        return await runner_of(p).run_script_file(p, path, dialect)
    if head.startswith(b"#!"):
        interp = head[2:].split(b"\n", 1)[0].decode(errors="replace").strip().split(" ")[0]
        p.err(f"{posixpath.basename(interp) or interp}: bad interpreter: {interp}: No such file or directory")
        return 126
    raise ExecError("noexec", p.argv[0])


async def run_argv(p: Proc) -> int:
    """Resolve `p.argv[0]` and run it. Raises ExecError."""
    path = resolve(p, p.argv[0])
    return await run_file(p, path)
