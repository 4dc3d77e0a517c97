"""The Mac's file system: a real directory per host, with macOS paths and a Unix permission model.

Files live on disk under the host's root so that SFTP, `shasum` and the tools see real bytes. Ownership is
kept in a side table (everything is root's unless a non-root user created it), so permission checks do not
depend on the uid this process runs as.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

ROOT_UID = 0
# World-writable (sticky) directories, as on macOS.
STICKY_DIRS = ("/private/tmp", "/private/var/tmp", "/Users/Shared")
# macOS's top-level symlinks into /private.
SYMLINKS = {"/tmp": "private/tmp", "/var": "private/var", "/etc": "private/etc"}
SKELETON = (
    "/Applications", "/Library/Keychains", "/Library/LaunchDaemons", "/Library/Logs",
    "/Library/Application Support", "/Library/Receipts", "/System/Library", "/Users/Shared",
    "/Volumes", "/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/private/tmp",
    "/private/var/tmp", "/private/var/root", "/private/var/db/receipts", "/private/etc",
)


def rewrite(path: Path | str, data: bytes) -> None:
    """Overwrite a small state file in place. Not write-temp-and-rename, nor truncate-to-zero: on ext4
    both make the kernel flush the file at once (auto_da_alloc), about 1 ms each, and a simulated install
    rewrites its state files some 30 times. The price: a torn file if the simulator is killed mid-write."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _permits(mode: int, owner: int, uid: int, bit: int) -> bool:
    """May uid do `bit` (4 read, 2 write, 1 execute/search) on an entry of this mode and owner? Root may do
    anything except execute a file without any x bit; others use the owner's bits or the others' bits."""
    if uid == ROOT_UID:
        return bit != 1 or stat.S_ISDIR(mode) or bool(mode & 0o111)
    return bool(mode & (bit << (6 if owner == uid else 0)))


class VfsError(OSError):
    """An OSError with a macOS path in it (never the host's real path)."""

    def __init__(self, err: int, path: str) -> None:
        super().__init__(err, os.strerror(err), path)


class VirtualFS:
    """Maps absolute macOS paths onto `root` and checks permissions for a uid."""

    def __init__(self, root: Path, owners_file: Path | None = None) -> None:
        self.root = root
        self._root_str = str(root).rstrip("/")
        self._owners_file = owners_file
        self._owners: dict[str, int] = {}
        self._lock = threading.Lock()
        if owners_file and owners_file.exists():
            self._owners = {k: int(v) for k, v in json.loads(owners_file.read_text()).items()}

    # ---- layout -------------------------------------------------------------------------------
    def create_skeleton(self, user: str, uid: int) -> None:
        for d in SKELETON:
            (self.root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
        for d in STICKY_DIRS:
            os.chmod(self.root / d.lstrip("/"), 0o1777)
        os.chmod(self.root / "private/var/root", 0o700)
        for link, target in SYMLINKS.items():
            p = self.root / link.lstrip("/")
            if not p.is_symlink():
                p.symlink_to(target)
        home = f"/Users/{user}"
        (self.root / home.lstrip("/")).mkdir(parents=True, exist_ok=True)
        os.chmod(self.real(home), 0o755)
        self.set_owner(home, uid)

    # ---- paths --------------------------------------------------------------------------------
    @staticmethod
    def normalize(path: str, cwd: str = "/") -> str:
        """Absolute, `..`-free macOS path (purely lexical, like the shell's view)."""
        p = posixpath.normpath(posixpath.join(cwd, path))
        if p.startswith("//"):
            p = "/" + p.lstrip("/")
        return p

    def canonical(self, path: str, cwd: str = "/") -> str:
        """Resolve symlinks (e.g. /tmp -> /private/tmp) inside the root; never escapes it."""
        # String operations and os.path, not pathlib: this runs for every path of every command.
        root = self._root_str
        todo = [x for x in self.normalize(path, cwd).split("/") if x]
        todo.reverse()
        out = ""  # the resolved prefix, "" for "/"
        hops = 0
        while todo:
            cur = out + "/" + todo.pop()
            if os.path.islink(root + cur):
                hops += 1
                if hops > 32:
                    raise VfsError(errno.ELOOP, path)
                target = os.readlink(root + cur)
                base = "/" if target.startswith("/") else out or "/"
                todo.extend(reversed([x for x in self.normalize(target, base).split("/") if x]))
                out = ""
                continue
            out = cur
        return out or "/"

    def real(self, path: str, cwd: str = "/") -> Path:
        """The on-disk path for a macOS path (symlinks resolved)."""
        return Path(self._root_str + self.canonical(path, cwd))

    # ---- ownership and permissions --------------------------------------------------------------
    def owner(self, path: str) -> int:
        return self._owners.get(self.canonical(path), ROOT_UID)

    def set_owner(self, path: str, uid: int) -> None:
        c = self.canonical(path)
        with self._lock:
            if self._owners.get(c, ROOT_UID) == uid:
                return  # unchanged: no rewrite of the side table
            if uid == ROOT_UID:
                del self._owners[c]
            else:
                self._owners[c] = uid
            self._save()

    def forget(self, path: str) -> None:
        """Drop ownership records at and below a removed path."""
        c = self.canonical(path)
        with self._lock:
            gone = [k for k in self._owners if k == c or k.startswith(c + "/")]
            for k in gone:
                del self._owners[k]
            if gone:
                self._save()

    def moved(self, src: str, dst: str) -> None:
        s, d = self.canonical(src), self.canonical(dst)
        with self._lock:
            moving = [k for k in self._owners if k == s or k.startswith(s + "/")]
            for k in moving:
                self._owners[d + k[len(s):]] = self._owners.pop(k)
            if moving:
                self._save()

    def _save(self) -> None:
        if self._owners_file:
            rewrite(self._owners_file, json.dumps(self._owners).encode())

    def _mode(self, path: str) -> int:
        try:
            return self.real(path).lstat().st_mode
        except FileNotFoundError:
            raise VfsError(errno.ENOENT, path) from None

    def _allowed(self, path: str, uid: int, bit: int) -> bool:
        """bit: 4 read, 2 write, 1 execute/search."""
        owner = ROOT_UID if uid == ROOT_UID else self.owner(path)
        return _permits(self._mode(path), owner, uid, bit)

    def check_traverse(self, path: str, uid: int) -> None:
        """Every parent directory must be searchable (x) by uid."""
        self._traverse(self.canonical(path), uid, path)

    def _traverse(self, c: str, uid: int, path: str) -> None:
        # The prefixes of a canonical path hold no symlinks: one lstat each, no re-resolving.
        root = self._root_str
        cur = ""
        for part in [x for x in c.split("/") if x][:-1]:
            cur += "/" + part
            try:
                mode = os.lstat(root + cur).st_mode
            except (FileNotFoundError, NotADirectoryError):
                raise VfsError(errno.ENOENT, path) from None
            if not _permits(mode, self._owners.get(cur, ROOT_UID), uid, 1):
                raise VfsError(errno.EACCES, path)

    def check_read(self, path: str, uid: int) -> None:
        self.check_traverse(path, uid)
        if not self.real(path).exists():
            raise VfsError(errno.ENOENT, path)
        if not self._allowed(path, uid, 4):
            raise VfsError(errno.EACCES, path)

    def check_exec(self, path: str, uid: int) -> None:
        # Resolved once (every command looks itself up along PATH with this): a canonical path's last
        # component is no symlink either, so one lstat tells existence, type and mode.
        c = self.canonical(path)
        self._traverse(c, uid, path)
        try:
            mode = os.lstat(self._root_str + c).st_mode
        except (FileNotFoundError, NotADirectoryError):
            raise VfsError(errno.ENOENT, path) from None
        if stat.S_ISDIR(mode) or not _permits(mode, self._owners.get(c, ROOT_UID), uid, 1):
            raise VfsError(errno.EACCES, path)

    def check_create(self, path: str, uid: int) -> None:
        """May uid create (or replace) an entry at path? Checks the parent directory."""
        self.check_traverse(path, uid)
        parent = posixpath.dirname(self.canonical(path)) or "/"
        if not self.real(parent).is_dir():
            raise VfsError(errno.ENOENT, path)
        if not self._allowed(parent, uid, 2):
            raise VfsError(errno.EACCES, path)

    def check_write(self, path: str, uid: int) -> None:
        """May uid modify an existing file's content or create it?"""
        if self.real(path).exists():
            self.check_traverse(path, uid)
            if not self._allowed(path, uid, 2):
                raise VfsError(errno.EACCES, path)
        else:
            self.check_create(path, uid)

    def check_remove(self, path: str, uid: int) -> None:
        """Unlink/rename-away needs write on the parent; sticky parents also need ownership. The last
        component is NOT followed: removing a symlink (even a dangling one) removes the link, as unlink(2)."""
        parent = self.canonical(posixpath.dirname(self.normalize(path)) or "/")
        self.check_traverse(posixpath.join(parent, "x"), uid)
        if not self.real(parent).is_dir():
            raise VfsError(errno.ENOENT, path)
        if not self._allowed(parent, uid, 2):
            raise VfsError(errno.EACCES, path)
        if uid == ROOT_UID:
            return
        if self._mode(parent) & stat.S_ISVTX and self.owner(path) != uid and self.owner(parent) != uid:
            raise VfsError(errno.EPERM, path)

    def check_chmod(self, path: str, uid: int) -> None:
        self.check_traverse(path, uid)
        if not self.real(path).exists():
            raise VfsError(errno.ENOENT, path)
        if uid != ROOT_UID and self.owner(path) != uid:
            raise VfsError(errno.EPERM, path)

    # ---- convenience used by tools (no permission checks: callers check first) ------------------
    def exists(self, path: str) -> bool:
        try:
            return self.real(path).exists()
        except VfsError:
            return False

    def read_bytes(self, path: str) -> bytes:
        try:
            return self.real(path).read_bytes()
        except FileNotFoundError:
            raise VfsError(errno.ENOENT, path) from None
        except IsADirectoryError:
            raise VfsError(errno.EISDIR, path) from None

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8", "replace")

    def write_bytes(self, path: str, data: bytes, mode: int | None = None, uid: int = ROOT_UID) -> None:
        real = self.real(path)
        new = not real.exists()
        real.write_bytes(data)
        if mode is not None:
            os.chmod(real, mode)
        if new:
            self.set_owner(path, uid)

    def write_text(self, path: str, text: str, mode: int | None = None, uid: int = ROOT_UID) -> None:
        self.write_bytes(path, text.encode(), mode, uid)

    def makedirs(self, path: str, mode: int = 0o755, uid: int = ROOT_UID) -> None:
        c = self.canonical(path)
        cur = "/"
        for part in [x for x in c.split("/") if x]:
            cur = posixpath.join(cur, part)
            real = self.root / cur.lstrip("/")
            if not real.exists():
                real.mkdir()
                os.chmod(real, mode)
                self.set_owner(cur, uid)

    def walk_files(self, path: str) -> Iterator[str]:
        """Every regular file at or below path, as macOS paths."""
        base = self.real(path)
        c = self.canonical(path)
        if base.is_file():
            yield c
            return
        for dirpath, _dirs, files in os.walk(base):
            rel = os.path.relpath(dirpath, base)
            for f in files:
                yield posixpath.normpath(posixpath.join(c, rel, f))
