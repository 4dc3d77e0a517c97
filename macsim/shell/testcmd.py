"""test / [ (the BSD utility and the shells' builtin behave alike for what we support)."""

from __future__ import annotations

import stat

from macsim.shell.proc import Proc, Tool
from macsim.vfs import VfsError

_UNARY_FILE = set("efdxrwsLhp")
_BINARY_INT = {"-eq", "-ne", "-lt", "-gt", "-le", "-ge"}


class _TestError(Exception):
    pass


def _file_test(p: Proc, op: str, operand: str) -> bool:
    fs = p.mac.fs
    path = p.path(operand)
    try:
        fs.check_traverse(path, p.uid)
    except VfsError:
        return False
    if op in ("L", "h"):
        parent = fs.real(path.rsplit("/", 1)[0] or "/")
        return (parent / path.rsplit("/", 1)[1]).is_symlink() if path != "/" else False
    try:
        st = fs.real(path).stat()
    except (OSError, VfsError):
        return False
    if op == "e":
        return True
    if op == "f":
        return stat.S_ISREG(st.st_mode)
    if op == "d":
        return stat.S_ISDIR(st.st_mode)
    if op == "p":
        return stat.S_ISFIFO(st.st_mode)
    if op == "s":
        return st.st_size > 0
    checks = {"r": fs.check_read, "w": fs.check_write, "x": fs.check_exec}
    try:
        if op == "x" and stat.S_ISDIR(st.st_mode):
            fs.check_traverse(path + "/x", p.uid)
        else:
            checks[op](path, p.uid)
        return True
    except VfsError:
        return False


def _int(v: str) -> int:
    try:
        return int(v.strip())
    except ValueError:
        raise _TestError(f"{v}: bad number") from None


def _eval(p: Proc, a: list[str]) -> bool:
    if not a:
        return False
    if a[0] == "!" and len(a) > 1:
        return not _eval(p, a[1:])
    for k, tok in enumerate(a):  # lowest precedence first: -o, then -a
        if tok == "-o" and 0 < k < len(a) - 1:
            return _eval(p, a[:k]) or _eval(p, a[k + 1 :])
    for k, tok in enumerate(a):
        if tok == "-a" and 0 < k < len(a) - 1:
            return _eval(p, a[:k]) and _eval(p, a[k + 1 :])
    if a[0] == "(" and a[-1] == ")" and len(a) > 2:
        return _eval(p, a[1:-1])
    if len(a) == 1:
        return a[0] != ""
    if len(a) == 2:
        op, v = a
        if op == "-z":
            return v == ""
        if op == "-n":
            return v != ""
        if len(op) == 2 and op[0] == "-" and op[1] in _UNARY_FILE:
            return _file_test(p, op[1], v)
        raise _TestError(f"{op}: unary operator expected")
    if len(a) == 3:
        x, op, y = a
        if op in ("=", "=="):
            return x == y
        if op == "!=":
            return x != y
        if op in _BINARY_INT:
            xi, yi = _int(x), _int(y)
            return {
                "-eq": xi == yi,
                "-ne": xi != yi,
                "-lt": xi < yi,
                "-gt": xi > yi,
                "-le": xi <= yi,
                "-ge": xi >= yi,
            }[op]
        if op in ("<", ">"):
            return x < y if op == "<" else x > y
        raise _TestError(f"{op}: binary operator expected")
    raise _TestError("syntax error")


async def test(p: Proc) -> int:
    """Exit 0 true, 1 false, 2 on a malformed expression (`test: ...` on stderr)."""
    args = p.argv[1:]
    prog = "test"
    if p.name == "[":
        prog = "["
        if not args or args[-1] != "]":
            p.err("[: missing ]")
            return 2
        args = args[:-1]
    try:
        return 0 if _eval(p, args) else 1
    except _TestError as e:
        p.err(f"{prog}: {e}")
        return 2


TOOLS: dict[str, Tool] = {"test": test, "[": test}
