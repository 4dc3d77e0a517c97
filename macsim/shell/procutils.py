"""Process utilities: true, false, sleep, kill, env, xargs, and the shells sh/bash/zsh."""

from __future__ import annotations

import asyncio
import errno
import re
from dataclasses import replace
from typing import Literal

from macsim.shell.fileaccess import read_operand, usage
from macsim.shell.options import UsageError, getopt
from macsim.shell.proc import Proc, Tool, runner_of
from macsim.shell.resolve import ExecError, script_mark
from macsim.vfs import VfsError


async def true(p: Proc) -> int:
    return 0


async def false(p: Proc) -> int:
    return 1


async def sleep(p: Proc) -> int:
    args = p.argv[1:]
    if not args:
        return usage(p, "usage: sleep number[unit] [...]")
    total = 0.0
    for a in args:
        m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)", a)
        if not m:
            p.err(f"sleep: invalid time interval: {a}")
            return usage(p, "usage: sleep number[unit] [...]")
        total += float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    await asyncio.sleep(total)
    return 0


_SIGNALS = ("HUP INT QUIT ILL TRAP ABRT EMT FPE KILL BUS SEGV SYS PIPE ALRM TERM URG STOP TSTP CONT CHLD "
            "TTIN TTOU IO XCPU XFSZ VTALRM PROF WINCH INFO USR1 USR2").split()


def _signal(spec: str) -> int | None:
    """A signal by number or by name (with or without SIG), as kill(1) takes it; None when unknown."""
    if spec.isdigit():
        n = int(spec)
        return n if n <= len(_SIGNALS) else None
    name = spec.upper().removeprefix("SIG")
    return _SIGNALS.index(name) + 1 if name in _SIGNALS else None


async def kill(p: Proc) -> int:
    """kill [-s name | -name | -number] pid... (BSD kill.c). macsim keeps a process table only for this
    exec's background jobs (`cmd &`): signalling one ends it (any signal but 0 is treated as fatal, the
    default action of the ones scripts send); another pid is "No such process"."""
    u = (
        "usage: kill [-s signal_name] pid ...\n       kill -l [exit_status]\n"
        "       kill -signal_name pid ...\n       kill -signal_number pid ..."
    )
    args = p.argv[1:]
    if args and args[0] == "-l":
        p.out(" ".join(_SIGNALS))
        return 0
    sig: int | None = 15
    if args and args[0] == "-s":
        if len(args) < 2:
            return usage(p, u, status=2)
        sig, args = _signal(args[1]), args[2:]
    elif args and args[0].startswith("-") and args[0] != "--":
        sig, args = _signal(args[0][1:]), args[1:]
    if sig is None:
        # kill.c nosig(): "unknown signal %s; valid signals:" and the list, status 2
        p.err(f"kill: unknown signal {p.argv[1 if p.argv[1] != '-s' else 2].lstrip('-')}; valid signals:")
        p.err(" ".join(_SIGNALS))
        return 2
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        return usage(p, u, status=2)
    status = 0
    for a in args:
        if not re.fullmatch(r"-?\d+", a):
            p.err(f"kill: illegal process id: {a}")
            status = 2
            continue
        job = p.session.running.get(int(a))
        if job is None or job.done():
            p.err(f"kill: {a}: No such process")
            status = 1
            continue
        if sig:
            p.session.signals[int(a)] = sig
            job.cancel()
    return status


async def env(p: Proc) -> int:
    u = (
        "usage: env [-0iv] [-P utilpath] [-S string] [-u name]\n"
        "           [name=value ...] [utility [argument ...]]"
    )
    args = p.argv[1:]
    new_env = dict(p.env)
    while args and args[0].startswith("-") and args[0] != "-":
        a = args.pop(0)
        if a == "--":
            break
        if a == "-i":
            new_env = {}
        elif a == "-u" and args:
            new_env.pop(args.pop(0), None)
        elif a.startswith("-u") and len(a) > 2:
            new_env.pop(a[2:], None)
        else:
            return usage(p, u, UsageError(f"illegal option -- {a[1:2]}"))
    if args and args[0] == "-":
        new_env = {}
        args = args[1:]
    while args and re.match(r"[^=]+=", args[0]):
        k, _, v = args.pop(0).partition("=")
        new_env[k] = v
    if not args:
        for k, v in new_env.items():
            p.out(f"{k}={v}")
        return 0
    child = replace(p, argv=args, env=new_env)
    try:
        return await runner_of(p).run_argv(child)
    except ExecError as e:
        p.err(f"env: {args[0]}: {e.strerror}")
        return 126 if e.kind in ("eacces", "noexec") else 127


async def xargs(p: Proc) -> int:
    u = (
        "usage: xargs [-0opt] [-E eofstr] [-I replstr [-R replacements] [-S replsize]]\n"
        "             [-J replstr] [-L number] [-n number [-x]] [-P maxprocs]\n"
        "             [-s size] [utility [argument ...]]"
    )
    try:
        opts, cmd = getopt(p.argv[1:], "0optE:I:R:S:J:L:n:xP:s:r")
    except UsageError as e:
        return usage(p, u, e)
    o = dict(opts)
    cmd = cmd or ["echo"]
    data = (await p.stdin.read(-1)).decode("utf-8", "replace")
    if "0" in o:
        items = [x for x in data.split("\0") if x]
    elif "I" in o:
        items = [line.strip() for line in data.split("\n") if line.strip()]
    else:
        items = _xargs_split(data)
    if "E" in o and o["E"] in items:
        items = items[: items.index(o["E"])]
    batches: list[list[str]]
    if "I" in o:
        rep = o["I"]
        batches = [[a.replace(rep, it) for a in cmd] for it in items]
    else:
        n = int(o["n"]) if "n" in o else (int(o["L"]) if "L" in o else max(1, len(items)))
        if n <= 0:
            p.err("xargs: illegal argument count")
            return 1
        batches = [cmd + items[k : k + n] for k in range(0, len(items), n)] or [list(cmd)]
    status = 0
    for argv in batches:
        child = replace(p, argv=argv, env=dict(p.env), stdin=_EmptyStdin())
        try:
            rc = await runner_of(p).run_argv(child)
        except ExecError as e:
            p.err(f"xargs: {argv[0]}: {e.strerror}")
            return 126 if e.kind in ("eacces", "noexec") else 127
        if rc == 255:
            p.err(f"xargs: {argv[0]}: exited with status 255; aborting")
            return 124
        if rc != 0:
            status = 123
    return status


def _xargs_split(data: str) -> list[str]:
    """xargs's own quoting: blanks separate, single/double quotes and backslash group."""
    out: list[str] = []
    cur: list[str] = []
    started = False
    i = 0
    while i < len(data):
        c = data[i]
        if c in " \t\n":
            if started:
                out.append("".join(cur))
                cur, started = [], False
        elif c in "'\"":
            end = data.find(c, i + 1)
            end = len(data) if end < 0 else end
            cur.append(data[i + 1 : end])
            started = True
            i = end
        elif c == "\\" and i + 1 < len(data):
            cur.append(data[i + 1])
            started = True
            i += 1
        else:
            cur.append(c)
            started = True
        i += 1
    if started:
        out.append("".join(cur))
    return out


class _EmptyStdin:
    """xargs gives its children /dev/null as stdin (BSD xargs)."""

    async def read(self, n: int = -1) -> bytes:
        return b""

    async def readline(self) -> bytes:
        return b""


async def shell(p: Proc) -> int:
    """sh / bash / zsh: `-c TEXT [arg0 [args]]`, `-s [args]` (script on stdin), `FILE [args]`; -e, -l, -x
    (ignored: no tracing), -u accepted."""
    name = p.name
    dialect: Literal["zsh", "sh"] = "zsh" if name == "zsh" else "sh"
    args = p.argv[1:]
    cmd_text: str | None = None
    from_stdin = False
    errexit = nounset = False
    while args and args[0].startswith(("-", "+")) and args[0] not in ("-", "--"):
        a = args.pop(0)
        if a in ("--login",):
            continue
        for c in a[1:]:
            if c == "c":
                if not args:
                    p.err(
                        f"{name}: -c: option requires an argument"
                        if dialect == "sh"
                        else f"{name}: string expected after -c"
                    )
                    return 2 if dialect == "sh" else 1
                cmd_text = args.pop(0)
            elif c == "s":
                from_stdin = True
            elif c == "e":
                errexit = a[0] == "-"
            elif c == "u":
                nounset = a[0] == "-"
            elif c in "lixvf":
                continue
            else:
                p.err(f"{name}: -{c}: invalid option" if dialect == "sh" else f"{name}: bad option: -{c}")
                return 2 if dialect == "sh" else 1
    if args and args[0] in ("-", "--"):
        args = args[1:]
    script: str | None = None
    if cmd_text is not None:
        text, arg0, positional = cmd_text, (args[0] if args else name), args[1:]
    elif from_stdin or not args:
        text, arg0, positional = (await p.stdin.read(-1)).decode("utf-8", "replace"), name, args
    else:
        data = read_operand_quiet(p, args[0])
        if data is None:
            p.err(
                f"{name}: {args[0]}: No such file or directory"
                if dialect == "sh"
                else f"{name}: can't open input file: {args[0]}"
            )
            return 127
        if isinstance(data, PermissionError):
            p.err(
                f"{name}: {args[0]}: Permission denied"
                if dialect == "sh"
                else f"{name}: can't open input file: {args[0]}"
            )
            return 126 if dialect == "sh" else 127
        program = script_mark(data[:512].encode())
        if program is not None:
            # an emulated 1E script (1E.Client.updateconf.sh...) does as `sh FILE ARGS` what it does run
            # directly: the guide runs updateconf.sh exactly so
            return await runner_of(p).run_tool(replace(p, argv=list(args)), program, scripts=True)
        text, arg0, positional, script = data, args[0], args[1:], args[0]
    return await runner_of(p).run_shell(
        p, dialect, text, arg0, positional, script=script, errexit=errexit, nounset=nounset
    )


def read_operand_quiet(p: Proc, operand: str) -> str | PermissionError | None:
    """A script file's text for `sh FILE` (read permission is all it needs), None when missing."""
    fs = p.mac.fs
    path = p.path(operand)
    try:
        fs.check_read(path, p.uid)
        return fs.read_text(path)
    except VfsError as e:
        if e.errno == errno.EACCES:
            return PermissionError(operand)
        return None


TOOLS: dict[str, Tool] = {
    "true": true,
    "false": false,
    "sleep": sleep,
    "kill": kill,
    "env": env,
    "xargs": xargs,
    "sh": shell,
    "bash": shell,
    "zsh": shell,
}

__all__ = ["TOOLS", "read_operand", "runner_of"]
