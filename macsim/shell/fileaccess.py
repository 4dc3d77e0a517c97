"""Reading and writing files on behalf of a command, with the caller's permissions and BSD-style errors."""

from __future__ import annotations

import errno
import os

from macsim.shell.options import UsageError
from macsim.shell.proc import Proc
from macsim.vfs import VfsError


def strerror(e: OSError) -> str:
    return os.strerror(e.errno or errno.EIO)


def read_operand(p: Proc, operand: str) -> bytes | None:
    """The bytes of file `operand` as p.uid may read them, or None after printing `prog: FILE: error`."""
    if operand == "/dev/null":
        return b""
    path = p.path(operand)
    fs = p.mac.fs
    try:
        fs.check_read(path, p.uid)
        if fs.real(path).is_dir():
            raise VfsError(errno.EISDIR, path)
        return fs.read_bytes(path)
    except VfsError as e:
        p.err(f"{p.name}: {operand}: {strerror(e)}")
        return None


async def inputs(p: Proc, operands: list[str]) -> list[tuple[str, bytes | None]]:
    """Each input (stdin when there are no operands or for `-`) with its bytes, None for unreadable ones
    (already reported)."""
    if not operands:
        return [("-", await p.stdin.read(-1))]
    out: list[tuple[str, bytes | None]] = []
    for op in operands:
        if op == "-":
            out.append(("-", await p.stdin.read(-1)))
        else:
            out.append((op, read_operand(p, op)))
    return out


def usage(p: Proc, text: str, err: UsageError | None = None, status: int = 1) -> int:
    """Print getopt's complaint (when any) and the usage text to stderr; return the usage status."""
    if err is not None:
        p.err(f"{p.name}: {err.message}")
    p.err(text)
    return status


def write_new_file(p: Proc, path: str, data: bytes, mode: int = 0o644) -> None:
    """Create or replace path's content as p.uid (the caller checked permission)."""
    p.mac.fs.write_bytes(path, data, mode=mode if not p.mac.fs.exists(path) else None, uid=p.uid)
