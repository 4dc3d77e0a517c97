"""The interpreter: runs parsed shell text the way macOS's zsh (`zsh -c`, what sshd runs for an exec
request) or /bin/sh (bash 3.2 in POSIX mode) would, for the subset in `parser.py`.

Messages follow the real shells. zsh -c prefixes its errors with `zsh:LINE:` (e.g. `zsh:1: command not
found: foo`, as seen in many public transcripts of `zsh -c`); bash 3.2 as sh prints `sh: foo: command not
found` for -c text and `FILE: line N: ...` for scripts.
"""

from __future__ import annotations

import asyncio
import errno
import fnmatch
import hashlib
import os
import posixpath
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Literal, cast

from macsim.mac import VirtualMac
from macsim.shell import builtins
from macsim.shell import parser as ast
from macsim.shell.launch import run_argv, run_file, run_tool
from macsim.shell.proc import Output, Proc, Session, Stdin
from macsim.shell.resolve import DEFAULT_PATH, ExecError, fault, hang_forever, resolve
from macsim.shell.streams import BufferOutput, BytesStdin, FileOutput, NullOutput
from macsim.vfs import VfsError

Dialect = Literal["zsh", "sh"]


_GLOB_CHAR = re.compile(r"[*?\[]")


class ShellExit(Exception):
    """`exit N` (or a fatal shell error): unwinds to the shell's top level."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _CommandFailed(Exception):
    """An expansion or redirection error already reported; the command does not run (status 1)."""


@dataclass
class IO:
    stdin: Stdin
    stdout: Output
    stderr: Output


@dataclass
class ShellState:
    """Everything a (sub)shell carries. Subshells get a copy."""

    mac: VirtualMac
    uid: int
    user: str
    cwd: str
    vars: dict[str, str]
    exported: set[str]
    positional: list[str]
    arg0: str
    dialect: Dialect
    session: Session
    pid: int
    script: str | None = None  # the script file being run, for messages; None for -c text
    status: int = 0
    line: int = 1
    errexit: bool = False
    nounset: bool = False
    pipefail: bool = False
    background: list[asyncio.Task[int]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {k: v for k, v in self.vars.items() if k in self.exported}

    def copy(self) -> ShellState:
        return replace(
            self,
            vars=dict(self.vars),
            exported=set(self.exported),
            positional=list(self.positional),
            background=[],
        )


async def _job_status(running: asyncio.Task[int], signals: dict[int, int], pid: int) -> int:
    """A background job's exit status: killed by `kill` (its task cancelled), 128 + the signal, the status
    sh, bash and zsh report for a process a signal terminated."""
    try:
        return await running
    except asyncio.CancelledError:
        if running.cancelled() and pid in signals:
            return 128 + signals[pid]
        raise


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:]


class Shell:
    """Runs syntax trees against a ShellState."""

    def __init__(self, state: ShellState) -> None:
        self.st = state
        self._cond = 0  # > 0 while evaluating a condition (set -e does not apply there)
        self._subst_status: int | None = None  # status of the last $(...) in the current command

    # ---- messages ---------------------------------------------------------------------------------
    def _err_exec(self, io: IO, e: ExecError) -> int:
        st = self.st
        if st.dialect == "zsh":
            what = {
                "notfound": "command not found",
                "enoent": "no such file or directory",
                "eacces": "permission denied",
                "noexec": "exec format error",
            }[e.kind]
            io.stderr.write(f"{self._zprefix()}{what}: {e.name}\n")
        else:
            io.stderr.write(f"{self._bprefix()}{e.name}: {e.strerror}\n")
        return e.status

    def _zprefix(self, builtin: str | None = None) -> str:
        name = self.st.script or "zsh"
        return f"{name}:{builtin + ':' if builtin else ''}{self.st.line}: "

    def _bprefix(self, builtin: bool = False) -> str:
        st = self.st
        if st.script is not None:
            return f"{st.script}: line {st.line}: "
        # bash 3.2 reports builtins' errors in -c text at "line 0"
        return f"{st.arg0}: line 0: " if builtin else f"{st.arg0}: "

    def builtin_err(self, io: IO, name: str, msg_zsh: str, msg_sh: str) -> None:
        if self.st.dialect == "zsh":
            io.stderr.write(f"{self._zprefix(name)}{msg_zsh}\n")
        else:
            io.stderr.write(f"{self._bprefix(builtin=True)}{name}: {msg_sh}\n")

    def _file_err(self, io: IO, path: str, err: int) -> None:
        msg = os.strerror(err)
        if self.st.dialect == "zsh":
            io.stderr.write(f"{self._zprefix()}{_lower_first(msg)}: {path}\n")
        else:
            io.stderr.write(f"{self._bprefix()}{path}: {msg}\n")

    # ---- entry points -----------------------------------------------------------------------------
    async def run_text(self, text: str, io: IO) -> int:
        """Parse and run text; parse errors are reported as the shell does (zsh: status 1; sh: 2)."""
        try:
            tree = ast.parse(text)
        except ast.ParseError as e:
            self.st.line = e.line
            if self.st.dialect == "zsh":
                msg = f"unmatched {e.unmatched}" if e.unmatched else f"parse error near `{e.near}'"
                io.stderr.write(f"{self._zprefix()}{msg}\n")
                return 1
            prefix = (
                f"{self.st.script or self.st.arg0}: {'-c: ' if self.st.script is None else ''}line {e.line}: "
            )
            if e.unmatched:
                io.stderr.write(f"{prefix}unexpected EOF while looking for matching `{e.unmatched}'\n")
                io.stderr.write(f"{prefix}syntax error: unexpected end of file\n")
            else:
                io.stderr.write(f"{prefix}syntax error near unexpected token `{e.near}'\n")
            return 2
        try:
            status = await self.run_seq(tree, io)
        except ShellExit as e:
            status = e.status
        for t in self.st.background:
            await t
        return status

    # ---- lists --------------------------------------------------------------------------------------
    async def run_seq(self, seq: ast.Seq, io: IO) -> int:
        status = self.st.status
        for item in seq.items:
            if item.background:
                sub = Shell(self.st.copy())
                pid = self.st.mac.alloc_pid()
                running = asyncio.ensure_future(sub._run_and_or_isolated(item, io))
                job = asyncio.ensure_future(_job_status(running, self.st.session.signals, pid))
                self.st.background.append(job)
                self.st.session.running[pid] = running
                self.st.session.jobs[pid] = job
                self.st.vars["!"] = str(pid)
                status = 0
                self.st.status = 0
            else:
                status = await self.run_and_or(item, io)
        return status

    async def _run_and_or_isolated(self, item: ast.AndOr, io: IO) -> int:
        try:
            return await self.run_and_or(item, io)
        except ShellExit as e:
            return e.status


    async def run_and_or(self, item: ast.AndOr, io: IO) -> int:
        steps = [("", item.first), *item.rest]
        status = 0
        ran_last = False
        for k, (op, pl) in enumerate(steps):
            if op == "&&" and status != 0:
                continue
            if op == "||" and status == 0:
                continue
            is_last = k == len(steps) - 1
            if not is_last:
                self._cond += 1
            try:
                status = await self.run_pipeline(pl, io)
            finally:
                if not is_last:
                    self._cond -= 1
            ran_last = is_last
            self.st.status = status
        if status != 0 and self.st.errexit and self._cond == 0 and ran_last and not steps[-1][1].negate:
            raise ShellExit(status)
        return status

    async def run_pipeline(self, pl: ast.Pipeline, io: IO) -> int:
        if len(pl.cmds) == 1:
            status = await self.run_command(pl.cmds[0], io)
        else:
            statuses: list[int] = []
            stdin = io.stdin
            for k, cmd in enumerate(pl.cmds):
                last = k == len(pl.cmds) - 1
                out: Output = io.stdout if last else BufferOutput()
                # zsh runs the last stage in the current shell; bash runs every stage in a subshell
                stage = self if last and self.st.dialect == "zsh" else Shell(self.st.copy())
                stage_io = IO(stdin, out, io.stderr)
                if stage is self:
                    statuses.append(await self.run_command(cmd, stage_io))
                else:
                    try:
                        statuses.append(await stage.run_command(cmd, stage_io))
                    except ShellExit as e:
                        statuses.append(e.status)
                if not last:
                    stdin = BytesStdin(cast(BufferOutput, out).getvalue())
            status = statuses[-1]
            if self.st.pipefail:
                status = next((s for s in reversed(statuses) if s != 0), 0)
        if pl.negate:
            status = 0 if status else 1
        self.st.status = status
        return status

    # ---- compound commands ------------------------------------------------------------------------
    async def run_command(self, cmd: ast.Command, io: IO) -> int:
        if isinstance(cmd, ast.Simple):
            return await self.run_simple(cmd, io)
        try:
            io = await self.redirect(cmd.redirs, io)
        except _CommandFailed:
            return 1
        if isinstance(cmd, ast.Group):
            if not cmd.subshell:
                return await self.run_seq(cmd.body, io)
            sub = Shell(self.st.copy())
            try:
                return await sub.run_seq(cmd.body, io)
            except ShellExit as e:
                return e.status
        if isinstance(cmd, ast.If):
            for cond, body in cmd.branches:
                self._cond += 1
                try:
                    c = await self.run_seq(cond, io)
                finally:
                    self._cond -= 1
                if c == 0:
                    return await self.run_seq(body, io)
            return await self.run_seq(cmd.orelse, io) if cmd.orelse else 0
        if isinstance(cmd, ast.For):
            items = list(self.st.positional) if cmd.items is None else await self.expand_words(cmd.items, io)
            status = 0
            for v in items:
                self.st.vars[cmd.var] = v
                status = await self.run_seq(cmd.body, io)
            return status
        if isinstance(cmd, ast.While):
            status = 0
            while True:
                self._cond += 1
                try:
                    c = await self.run_seq(cmd.cond, io)
                finally:
                    self._cond -= 1
                if (c == 0) == cmd.until:
                    return status
                status = await self.run_seq(cmd.body, io)
                await asyncio.sleep(0)
        raise AssertionError(f"unknown command node {cmd!r}")

    # ---- simple commands --------------------------------------------------------------------------
    async def run_simple(self, cmd: ast.Simple, io: IO) -> int:
        st = self.st
        st.line = cmd.line
        self._subst_status = None
        try:
            argv = await self.expand_words(cmd.words, io)
            assigns = [(a.name, await self.expand_str(a.value, io)) for a in cmd.assigns]
        except _CommandFailed:
            return 1
        if not argv:
            for name, value in assigns:
                st.vars[name] = value
            try:
                await self.redirect(cmd.redirs, io)
            except _CommandFailed:
                return 1
            return self._subst_status or 0
        try:
            cio = await self.redirect(cmd.redirs, io)
        except _CommandFailed:
            return 1
        special = _SPECIAL.get(argv[0])
        if special is not None:
            for name, value in assigns:  # POSIX: assignments before special builtins persist
                st.vars[name] = value
            return await special(self, argv, cio)
        env = {**st.env(), **dict(assigns)}
        return await self.exec_argv(argv, env, cio)

    def make_proc(self, argv: list[str], env: dict[str, str], io: IO) -> Proc:
        st = self.st
        return Proc(
            st.mac,
            argv,
            env,
            st.cwd,
            st.uid,
            st.user,
            io.stdin,
            io.stdout,
            io.stderr,
            st.session,
            runner=RUNNER,
        )

    async def exec_argv(self, argv: list[str], env: dict[str, str], io: IO) -> int:
        """Run a command that is not a special builtin: a shell builtin tool (echo, test, ...) or a file."""
        p = self.make_proc(argv, env, io)
        builtin = _tool_builtins(self.st.dialect).get(argv[0])
        if builtin is not None:
            forced = fault(p)
            if forced == -1:
                return await hang_forever()
            if forced is not None:
                return forced
            if argv[0] == "pwd":
                p.cwd = self.st.cwd
            return await builtin(p)
        try:
            path = resolve(p, argv[0])
            return await run_file(p, path)
        except ExecError as e:
            return self._err_exec(io, e)

    # ---- redirections -----------------------------------------------------------------------------
    async def redirect(self, redirs: list[ast.Redir], io: IO) -> IO:
        if not redirs:
            return io
        fds: dict[int, object] = {0: io.stdin, 1: io.stdout, 2: io.stderr}
        for r in redirs:
            target = await self.expand_str(r.target, io)
            if r.op in (">&", "<&") and (target.isdigit() or target == "-"):
                if target == "-":
                    fds[r.fd] = NullOutput() if r.op == ">&" else BytesStdin()
                elif int(target) in fds:
                    fds[r.fd] = fds[int(target)]
                else:
                    self._bad_fd(io, target)
                continue
            if r.op == "<<<":
                fds[r.fd] = BytesStdin((target + "\n").encode())
            elif r.op == "<":
                fds[r.fd] = self._open_in(target, io)
            elif r.op in ("&>", ">&"):
                fds[1] = fds[2] = self._open_out(target, False, fds, io)
            else:
                fds[r.fd] = self._open_out(target, r.op == ">>", fds, io)
        return IO(cast(Stdin, fds[0]), cast(Output, fds[1]), cast(Output, fds[2]))

    def _bad_fd(self, io: IO, target: str) -> None:
        if self.st.dialect == "zsh":
            io.stderr.write(f"{self._zprefix()}{target}: bad file descriptor\n")
        else:
            io.stderr.write(f"{self._bprefix()}{target}: Bad file descriptor\n")
        raise _CommandFailed

    def _open_in(self, target: str, io: IO) -> Stdin:
        if target == "/dev/null":
            return BytesStdin()
        fs = self.st.mac.fs
        path = fs.normalize(target, self.st.cwd)
        try:
            fs.check_read(path, self.st.uid)
            return BytesStdin(fs.read_bytes(path))
        except VfsError as e:
            self._file_err(io, target, e.errno or errno.EIO)
            raise _CommandFailed from None

    def _open_out(self, target: str, append: bool, fds: dict[int, object], io: IO) -> Output:
        if target == "/dev/null":
            return NullOutput()
        if target in ("/dev/stdout", "/dev/fd/1"):
            return cast(Output, fds[1])
        if target in ("/dev/stderr", "/dev/fd/2"):
            return cast(Output, fds[2])
        fs = self.st.mac.fs
        path = fs.normalize(target, self.st.cwd)
        try:
            fs.check_write(path, self.st.uid)
            real = fs.real(path)
            if real.is_dir():
                raise VfsError(errno.EISDIR, path)
            if not real.exists():
                fs.write_bytes(path, b"", mode=0o644, uid=self.st.uid)  # umask 022
            return FileOutput(real, truncate=not append)
        except VfsError as e:
            self._file_err(io, target, e.errno or errno.EIO)
            raise _CommandFailed from None

    # ---- expansion ----------------------------------------------------------------------------------
    async def expand_words(self, words: list[ast.Word], io: IO) -> list[str]:
        out: list[str] = []
        for w in words:
            out.extend(await self.expand(w, io))
        return out

    async def expand_str(self, w: ast.Word, io: IO) -> str:
        """A word expanded without field splitting or globbing (assignments, redirection targets)."""
        chunks: list[str] = []
        for part in w.parts:
            if part.kind == "lit":
                chunks.append(part.text)
            elif part.kind == "param":
                vals = await self._param(part, io)
                chunks.append(" ".join(vals))
            else:
                chunks.append(await self._cmdsub(part, io))
        return "".join(chunks)

    async def expand(self, w: ast.Word, io: IO) -> list[str]:
        """A word's fields after parameter expansion, command substitution, splitting and globbing."""
        fields: list[tuple[str, str, bool]] = []  # (text, glob pattern, has unquoted glob chars)
        cur: list[str] | None = None
        pat: list[str] = []
        globbing = False

        def finish() -> None:
            nonlocal cur, globbing
            if cur is not None:
                fields.append(("".join(cur), "".join(pat), globbing))
            cur = None
            pat.clear()
            globbing = False

        def add(text: str, quoted: bool, split: bool) -> None:
            nonlocal cur, globbing
            if not split:
                if not text and not quoted:
                    return
                cur = cur if cur is not None else []
                cur.append(text)
                if quoted:  # quoted glob characters match themselves
                    escaped = _GLOB_CHAR.sub(r"[\g<0>]", text)
                    pat.append(escaped)
                else:
                    pat.append(text)
                    globbing = globbing or any(c in text for c in "*?")
                return
            pieces = re.split(r"[ \t\n]+", text)
            for k, piece in enumerate(pieces):
                if k > 0:
                    finish()
                if piece:
                    add(piece, quoted=True, split=False)

        sh = self.st.dialect == "sh"
        for part in w.parts:
            if part.kind == "lit":
                add(part.text, part.quoted, False)
            elif part.kind == "cmd":
                add(await self._cmdsub(part, io), part.quoted, not part.quoted)
            elif part.text in "@*" and not part.op:
                vals = list(self.st.positional)
                if part.quoted and part.text == "*":
                    add(" ".join(vals), True, False)
                    continue
                for k, v in enumerate(vals):
                    if k > 0:
                        finish()
                    add(v, part.quoted, sh and not part.quoted)
            else:
                vals = await self._param(part, io)
                add(" ".join(vals), part.quoted, sh and not part.quoted)
        finish()
        out: list[str] = []
        for text, pattern, has_glob in fields:
            if has_glob:
                matches = self._glob(pattern)
                if matches:
                    out.extend(matches)
                    continue
                if self.st.dialect == "zsh":
                    io.stderr.write(f"{self._zprefix()}no matches found: {text}\n")
                    raise _CommandFailed
            out.append(text)
        return out

    def _glob(self, pattern: str) -> list[str]:
        """Paths matching pattern (`*` and `?` per component; hidden files need an explicit dot)."""
        fs = self.st.mac.fs
        absolute = pattern.startswith("/")
        comps = [c for c in pattern.split("/") if c]
        bases = ["/" if absolute else ""]
        for comp in comps:
            nxt: list[str] = []
            for base in bases:
                dir_path = fs.normalize(base or ".", self.st.cwd)
                if not any(ch in comp for ch in "*?["):
                    lit = re.sub(r"\[(.)\]", r"\1", comp)
                    cand = posixpath.join(base, lit) if base else lit
                    if fs.exists(fs.normalize(cand, self.st.cwd)):
                        nxt.append(cand)
                    continue
                try:
                    fs.check_read(dir_path, self.st.uid)
                    names = sorted(x.name for x in fs.real(dir_path).iterdir())
                except (VfsError, OSError):
                    continue
                for n in names:
                    if n.startswith(".") and not comp.startswith("."):
                        continue
                    if fnmatch.fnmatchcase(n, comp):
                        nxt.append(posixpath.join(base, n) if base else n)
            bases = nxt
        return sorted(bases)

    async def _cmdsub(self, part: ast.Part, io: IO) -> str:
        assert part.body is not None
        sub = Shell(self.st.copy())
        out = BufferOutput()
        try:
            status = await sub.run_seq(part.body, IO(io.stdin, out, io.stderr))
        except ShellExit as e:
            status = e.status
        self._subst_status = status
        self.st.status = status
        return out.text().rstrip("\n")

    async def _param(self, part: ast.Part, io: IO) -> list[str]:
        st = self.st
        name = part.text
        value: str | None
        if name == "?":
            value = str(st.status)
        elif name == "$":
            value = str(st.pid)
        elif name == "#":
            value = str(len(st.positional))
        elif name == "0":
            value = st.arg0
        elif name.isdigit():
            k = int(name)
            value = st.positional[k - 1] if k <= len(st.positional) else None
        elif name in "@*":
            return list(st.positional) if st.positional else []
        elif name == "-":
            value = ("e" if st.errexit else "") + ("u" if st.nounset else "")
        else:
            value = st.vars.get(name)
        op = part.op
        if op == "#":
            return [str(len(value or ""))]
        unset_or_empty = value is None or (op.startswith(":") and value == "")
        if op in (":-", "-"):
            if unset_or_empty:
                return [await self.expand_str(cast(ast.Word, part.arg), io)]
        elif op in (":=", "="):
            if unset_or_empty:
                value = await self.expand_str(cast(ast.Word, part.arg), io)
                st.vars[name] = value
        elif op in (":+", "+"):
            return [await self.expand_str(cast(ast.Word, part.arg), io)] if not unset_or_empty else []
        elif op in (":?", "?"):
            if unset_or_empty:
                msg = await self.expand_str(cast(ast.Word, part.arg), io) or "parameter null or not set"
                io.stderr.write(
                    f"{self._zprefix() if st.dialect == 'zsh' else self._bprefix()}{name}: {msg}\n"
                )
                raise ShellExit(1)
        if value is None and st.nounset and not op:
            if st.dialect == "zsh":
                io.stderr.write(f"{self._zprefix()}{name}: parameter not set\n")
            else:
                io.stderr.write(f"{self._bprefix()}{name}: unbound variable\n")
            raise ShellExit(1)
        return [value or ""]


# ---- special builtins (they act on the shell's own state) -------------------------------------------
Special = Callable[[Shell, list[str], IO], Awaitable[int]]


async def _b_cd(sh: Shell, argv: list[str], io: IO) -> int:
    st = sh.st
    args = argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    target = args[0] if args else st.vars.get("HOME", "/")
    if target == "-":
        target = st.vars.get("OLDPWD", st.cwd)
    fs = st.mac.fs
    path = fs.normalize(target, st.cwd)
    try:
        fs.check_traverse(path + "/x", st.uid)
    except VfsError as e:
        msg = __import__("os").strerror(e.errno or errno.EIO)
        sh.builtin_err(io, "cd", f"{_lower_first(msg)}: {target}", f"{target}: {msg}")
        return 1
    if not fs.real(path).is_dir():
        sh.builtin_err(io, "cd", f"not a directory: {target}", f"{target}: Not a directory")
        return 1
    st.vars["OLDPWD"] = st.cwd
    st.cwd = path
    st.vars["PWD"] = path
    return 0


_VALID_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


async def _b_export(sh: Shell, argv: list[str], io: IO) -> int:
    st = sh.st
    status = 0
    for a in argv[1:]:
        if a == "-p":
            for k in sorted(st.exported):
                if k in st.vars:
                    io.stdout.write(f"export {k}={_quote(st.vars[k])}\n")
            continue
        name, eq, value = a.partition("=")
        if not _VALID_NAME.match(name):
            sh.builtin_err(io, "export", f"not an identifier: {name}", f"`{a}': not a valid identifier")
            status = 1
            continue
        if eq:
            st.vars[name] = value
        st.exported.add(name)
    return status


async def _b_unset(sh: Shell, argv: list[str], io: IO) -> int:
    for a in argv[1:]:
        if a in ("-v", "-f"):
            continue
        sh.st.vars.pop(a, None)
        sh.st.exported.discard(a)
    return 0


async def _b_set(sh: Shell, argv: list[str], io: IO) -> int:
    st = sh.st
    args = argv[1:]
    while args:
        a = args[0]
        if a == "--":
            st.positional = args[1:]
            return 0
        if a in ("-o", "+o") and len(args) > 1:
            on = a == "-o"
            opt = args[1]
            if opt == "errexit":
                st.errexit = on
            elif opt == "nounset":
                st.nounset = on
            elif opt == "pipefail":
                st.pipefail = on
            elif opt not in ("xtrace", "verbose", "noclobber"):
                sh.builtin_err(io, "set", f"no such option: {opt}", f"{opt}: invalid option name")
                return 1
            args = args[2:]
            continue
        if len(a) > 1 and a[0] in "-+":
            on = a[0] == "-"
            for c in a[1:]:
                if c == "e":
                    st.errexit = on
                elif c == "u":
                    st.nounset = on
                elif c not in "xvf":
                    sh.builtin_err(io, "set", f"bad option: {a[0]}{c}", f"{a[0]}{c}: invalid option")
                    return 1 if sh.st.dialect == "zsh" else 2
            args = args[1:]
            continue
        st.positional = list(args)
        return 0
    return 0


async def _b_exit(sh: Shell, argv: list[str], io: IO) -> int:
    if len(argv) > 1:
        try:
            raise ShellExit(int(argv[1]) & 0xFF)
        except ValueError:
            sh.builtin_err(
                io,
                "exit",
                f"bad math expression: operand expected at `{argv[1]}'",
                f"{argv[1]}: numeric argument required",
            )
            raise ShellExit(1 if sh.st.dialect == "zsh" else 255) from None
    raise ShellExit(sh.st.status)


async def _b_shift(sh: Shell, argv: list[str], io: IO) -> int:
    n = int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else 1
    if n > len(sh.st.positional):
        sh.builtin_err(io, "shift", "shift count must be <= $#", "shift count out of range")
        return 1
    sh.st.positional = sh.st.positional[n:]
    return 0


async def _b_colon(sh: Shell, argv: list[str], io: IO) -> int:
    return 0


async def _b_read(sh: Shell, argv: list[str], io: IO) -> int:
    args = argv[1:]
    raw = False
    while args and args[0].startswith("-"):
        if args[0] == "-r":
            raw = True
        args = args[1:]
    line = await io.stdin.readline()
    if not line:
        for name in args or ["REPLY"]:
            sh.st.vars[name] = ""
        return 1
    text = line.decode("utf-8", "replace").rstrip("\n")
    if not raw:
        text = re.sub(r"\\(.)", r"\1", text)
    names = args or ["REPLY"]
    if len(names) == 1:
        sh.st.vars[names[0]] = text.strip(" \t") if args else text
        return 0
    pieces = text.strip(" \t").split(None, len(names) - 1)
    for k, name in enumerate(names):
        sh.st.vars[name] = pieces[k] if k < len(pieces) else ""
    return 0


async def _b_command(sh: Shell, argv: list[str], io: IO) -> int:
    args = argv[1:]
    if args and args[0] in ("-v", "-V"):
        status = 0
        for name in args[1:]:
            if name in _SPECIAL or name in _tool_builtins(sh.st.dialect) or name in ast.RESERVED:
                io.stdout.write(f"{name}\n")
                continue
            p = sh.make_proc([name], sh.st.env(), io)
            p.env.setdefault("PATH", sh.st.vars.get("PATH", DEFAULT_PATH))
            try:
                io.stdout.write(resolve(p, name) + "\n")
            except ExecError:
                status = 1
        return status
    if not args:
        return 0
    if args[0] in _SPECIAL:
        return await _SPECIAL[args[0]](sh, args, io)
    return await sh.exec_argv(args, sh.st.env(), io)


async def _b_eval(sh: Shell, argv: list[str], io: IO) -> int:
    text = " ".join(argv[1:])
    try:
        tree = ast.parse(text)
    except ast.ParseError:
        return await Shell(sh.st.copy()).run_text(text, io)  # reports the error, changes nothing
    return await sh.run_seq(tree, io)


async def _b_source(sh: Shell, argv: list[str], io: IO) -> int:
    if len(argv) < 2:
        sh.builtin_err(io, argv[0], "not enough arguments", "filename argument required")
        return 1 if sh.st.dialect == "zsh" else 2
    fs = sh.st.mac.fs
    path = fs.normalize(argv[1], sh.st.cwd)
    try:
        fs.check_read(path, sh.st.uid)
        text = fs.read_text(path)
    except VfsError as e:
        msg = __import__("os").strerror(e.errno or errno.EIO)
        sh.builtin_err(io, argv[0], f"{_lower_first(msg)}: {argv[1]}", f"{argv[1]}: {msg}")
        return 1
    tree = ast.parse(text)
    return await sh.run_seq(tree, io)


async def _b_exec(sh: Shell, argv: list[str], io: IO) -> int:
    if len(argv) == 1:
        return 0
    raise ShellExit(await sh.exec_argv(argv[1:], sh.st.env(), io))


async def _b_wait(sh: Shell, argv: list[str], io: IO) -> int:
    if len(argv) > 1:  # `wait PID...`: those children only; the status of the last
        status = 0
        for a in argv[1:]:
            job = sh.st.session.jobs.get(int(a)) if a.isdigit() else None
            if job is None or job not in sh.st.background:
                # bash: "wait: pid N is not a child of this shell", status 127 (zsh words it the same)
                sh.builtin_err(io, "wait", f"pid {a} is not a child of this shell",
                               f"pid {a} is not a child of this shell")
                status = 127
                continue
            status = await job
        return status
    status = 0
    for t in sh.st.background:
        status = await t
    sh.st.background.clear()
    return status


_SPECIAL: dict[str, Special] = {
    "cd": _b_cd,
    "export": _b_export,
    "unset": _b_unset,
    "set": _b_set,
    "exit": _b_exit,
    "shift": _b_shift,
    ":": _b_colon,
    "read": _b_read,
    "command": _b_command,
    "eval": _b_eval,
    ".": _b_source,
    "source": _b_source,
    "exec": _b_exec,
    "wait": _b_wait,
}


def _tool_builtins(dialect: Dialect) -> dict[str, Callable[[Proc], Awaitable[int]]]:
    """Commands the shell runs itself though a file of the same name exists (echo, test, ...)."""
    return builtins.ZSH if dialect == "zsh" else builtins.SH


def _quote(v: str) -> str:
    return v if re.fullmatch(r"[A-Za-z0-9_./:@%+=-]+", v) else "'" + v.replace("'", "'\\''") + "'"


# ---- the Runner tools call back into ------------------------------------------------------------------
class ShellRunner:
    """The Runner handed to tools as `Proc.runner`."""

    async def run_argv(self, p: Proc) -> int:
        """Resolve and run p.argv with p's identity and streams. Raises ExecError when it cannot start."""
        return await run_argv(p)

    async def run_script_file(self, p: Proc, path: str, dialect: str) -> int:
        return await run_script_file(p, path, dialect)

    async def run_tool(self, p: Proc, tool_name: str, scripts: bool = False) -> int:
        return await run_tool(p, tool_name, scripts)

    async def run_shell(
        self,
        p: Proc,
        dialect: Dialect,
        text: str,
        arg0: str,
        positional: list[str],
        *,
        script: str | None = None,
        errexit: bool = False,
        nounset: bool = False,
    ) -> int:
        """Run text as sh/bash/zsh started by p (the `sh` command: `-c TEXT`, `-s`, or FILE)."""
        st = state_from_proc(p, dialect, arg0, positional, script=script)
        st.errexit, st.nounset = errexit, nounset
        if p.name == "bash" or p.name == "sh":
            st.vars.setdefault("BASH", f"/bin/{p.name}")
        return await Shell(st).run_text(text, IO(p.stdin, p.stdout, p.stderr))

    async def run_script(self, p: Proc, script: str) -> int:
        """Run script text as `sh -c script` would: $0 is p.argv[0], $1... are p.argv[1:]."""
        st = state_from_proc(p, "sh", p.argv[0], p.argv[1:])
        return await Shell(st).run_text(script, IO(p.stdin, p.stdout, p.stderr))


RUNNER = ShellRunner()


def state_from_proc(
    p: Proc, dialect: Dialect, arg0: str, positional: list[str], script: str | None = None
) -> ShellState:
    """A new shell process started by p (its identity, cwd, environment and session)."""
    return ShellState(
        mac=p.mac,
        uid=p.uid,
        user=p.user,
        cwd=p.cwd,
        vars=dict(p.env),
        exported=set(p.env),
        positional=positional,
        arg0=arg0,
        dialect=dialect,
        session=p.session,
        pid=p.mac.alloc_pid(),
        script=script,
    )


async def run_script_file(p: Proc, path: str, dialect: str) -> int:
    """Run the shell script at path (readable by p.uid) with p.argv[1:] as $1...; $0 is p.argv[0]."""
    text = p.mac.fs.read_text(path)
    d: Dialect = "zsh" if dialect == "zsh" else "sh"
    st = state_from_proc(p, d, p.argv[0], p.argv[1:], script=p.argv[0])
    return await Shell(st).run_text(text, IO(p.stdin, p.stdout, p.stderr))


def user_tmpdir(mac: VirtualMac) -> str:
    """The SSH user's $TMPDIR (`/var/folders/xx/.../T/` as macOS's confstr gives it), created 0700 and
    owned by the user the first time."""
    h = hashlib.sha256(f"{mac.spec.user}:{mac.spec.uid}".encode()).hexdigest()
    alphabet = "0123456789bcdfghjklmnpqrstvwxyz_"
    tail = "".join(alphabet[int(h[i : i + 2], 16) % len(alphabet)] for i in range(0, 44, 2))
    d = f"/private/var/folders/{tail[:2]}/{tail[2:]}0000gn/T"
    fs = mac.fs
    if not fs.exists(d):
        fs.makedirs(posixpath.dirname(d), mode=0o755)
        fs.makedirs(d, mode=0o700, uid=mac.spec.uid)
        fs.set_owner(posixpath.dirname(d), mac.spec.uid)
    return d.removeprefix("/private") + "/"


def login_env(mac: VirtualMac) -> dict[str, str]:
    """The environment sshd gives the SSH user's login shell."""
    user = mac.spec.user
    return {
        "HOME": f"/Users/{user}",
        "USER": user,
        "LOGNAME": user,
        "SHELL": "/bin/zsh",
        "PATH": DEFAULT_PATH,
        "TMPDIR": user_tmpdir(mac),
    }


async def run_exec(mac: VirtualMac, command: str, stdin: Stdin, stdout: Output, stderr: Output) -> int:
    """Run one SSH exec request's command text as `zsh -c command` for the host's SSH user and return its
    exit status. A fresh Session (sudo's cached credentials) lives for this call only. Cancelling the task
    (channel closed) cancels whatever runs. Does not write the host's command log (the server does)."""
    env = login_env(mac)
    st = ShellState(
        mac=mac,
        uid=mac.spec.uid,
        user=mac.spec.user,
        cwd=env["HOME"],
        vars=dict(env),
        exported=set(env),
        positional=[],
        arg0="zsh",
        dialect="zsh",
        session=Session(),
        pid=mac.alloc_pid(),
    )
    return await Shell(st).run_text(command, IO(stdin, stdout, stderr))
