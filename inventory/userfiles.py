"""The one reader of files a user hands us: regular files only, each kind with its own size cap.

It lives in `inventory/` because that package may import nothing of ours yet must read inventory files
with it; everything else (certificates, passwords, DMGs, configuration) imports it from here.

Why: a path that is a symlink to `/dev/zero` once made `certs add` read until the machine ran out of
memory, a FIFO blocks `open()` forever, and a directory reported as "no such file" sends the user looking
in the wrong place. So a file is opened without blocking, checked with fstat on the opened descriptor
(no race with a swap after the check), refused unless it is a regular file, refused when larger than the
kind's cap, and read with the cap as a hard bound even if it grows while we read.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

_MIB = 1024 * 1024


@dataclass(frozen=True)
class FileKind:
    """What a file is for (named in messages) and the most bytes we accept of it."""

    name: str
    limit: int


# Caps far above any real file of the kind, far below what would hurt the controller.
INVENTORY = FileKind("inventory file", 16 * _MIB)
CERTIFICATE = FileKind("certificate file", 4 * _MIB)
PRIVATE_KEY = FileKind("private key file", 1 * _MIB)
PFX = FileKind("PKCS#12 (PFX) file", 4 * _MIB)
PASSWORD = FileKind("password file", 64 * 1024)
SECRET = FileKind("secret file", 1 * _MIB)
SECRET_KEY = FileKind("secret key file", 64 * 1024)
CONFIG = FileKind("configuration file", 1 * _MIB)
# Files named in the configuration that another library (asyncssh) opens: checked by `check_user_file`.
KNOWN_HOSTS = FileKind("known_hosts file", 64 * _MIB)
SSH_KEY = FileKind("private key file for SSH", 1 * _MIB)
# A 1E Client DMG is tens of MB; it is streamed, never read whole.
DMG = FileKind("disk image (DMG)", 4 * 1024 * _MIB)


class UserFileError(ValueError):
    """A file a user named cannot be read as the kind asked for; the message names the path, the kind and
    (when it is the reason) the limit."""

    def __init__(self, path: str | os.PathLike[str], kind: FileKind, reason: str) -> None:
        self.path = str(path)
        self.kind = kind
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def describe_limit(limit: int) -> str:
    """The limit in the largest whole unit: `16 MiB`, `64 KiB`, `4 GiB`, `512 bytes`."""
    for unit, size in (("GiB", 1024 * _MIB), ("MiB", _MIB), ("KiB", 1024)):
        if limit >= size and limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _what(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _os_reason(e: OSError) -> str:
    if e.errno == errno.ENOENT:
        return "no such file"
    if e.errno == errno.EACCES:
        return "permission denied"
    if e.errno == errno.ELOOP:
        return "too many levels of symbolic links"
    if e.errno == errno.ENOTDIR:
        return "a part of the path is not a directory"
    return f"cannot open: {e.strerror or e}"


def _too_large(path: str | os.PathLike[str], kind: FileKind) -> UserFileError:
    return UserFileError(
        path, kind, f"larger than {describe_limit(kind.limit)}, the most {_a(kind.name)} may hold"
    )


@contextmanager
def open_user_file(path: str | os.PathLike[str], kind: FileKind) -> Iterator[tuple[BinaryIO, int]]:
    """Open path for reading as a kind: yields (binary file, size). Raises UserFileError when it does not
    exist, cannot be opened, is not a regular file (after following symlinks) or is over the kind's cap.

    For large files (DMGs) read in chunks and stop at the size yielded: see `read_chunks`."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise UserFileError(path, kind, f"{_os_reason(e)} ({kind.name})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UserFileError(path, kind, f"is {_what(st.st_mode)}; {_a(kind.name)} must be a regular file")
        if st.st_size > kind.limit:
            raise _too_large(path, kind)
        os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f, st.st_size


def check_user_file(path: str | os.PathLike[str], kind: FileKind) -> None:
    """Check, without reading it, that path is a regular file (symlinks followed) within the kind's cap: for
    files another library will open. Raises UserFileError like `open_user_file`."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise UserFileError(path, kind, f"{_os_reason(e)} ({kind.name})") from None
    if not stat.S_ISREG(st.st_mode):
        raise UserFileError(path, kind, f"is {_what(st.st_mode)}; {_a(kind.name)} must be a regular file")
    if st.st_size > kind.limit:
        raise _too_large(path, kind)


def read_user_file(path: str | os.PathLike[str], kind: FileKind) -> bytes:
    """The whole content of a small file of this kind. Raises UserFileError (see `open_user_file`),
    also when the file grew past the cap while it was read."""
    with open_user_file(path, kind) as (f, _size):
        try:
            data = f.read(kind.limit + 1)
        except OSError as e:  # EISDIR cannot happen after fstat; EIO on a failing disk can
            raise UserFileError(path, kind, f"cannot read the {kind.name}: {e.strerror or e}") from None
    if len(data) > kind.limit:
        raise _too_large(path, kind)
    return data


def read_chunks(f: BinaryIO, size: int, chunk: int = _MIB) -> Iterator[bytes]:
    """The first `size` bytes of f in chunks: a file that grows while read is not followed further."""
    left = size
    while left > 0:
        data = f.read(min(chunk, left))
        if not data:
            return
        left -= len(data)
        yield data
