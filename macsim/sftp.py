"""SFTP on a simulated Mac: macOS paths over the host's directory, with the vfs permission model.

The SSH user is never root, so every request is checked with `VirtualFS` for the spec's uid: creating in
`/private/tmp` (via the `/tmp` symlink too) works, writing under `/Library` is denied ("Permission denied",
SSH_FX_PERMISSION_DENIED). Relative paths resolve against the user's home, as OpenSSH's sftp-server does.

Permissions: on create, the mode the client asks for is applied with sshd's usual umask 022 (so 0600, 0644,
0700, 0755 are kept exactly; 0666 becomes 0644); setstat/fsetstat set the exact mode (owner only). Files and
directories the user creates are recorded as the user's in the vfs owner table.

`rename` is SFTP v3 rename: it fails when the target exists (as OpenSSH's does); `posix-rename@openssh.com`
replaces the target. Hard links and byte-range locks are not supported. Symlinks the user creates are
not recorded as the user's (the vfs owner table follows links), so they count as root's: the user can
remove them where the directory is writable, but not from a sticky directory such as /private/tmp.

Free space: writes that would grow the volume past `free_space_mb` fail with "No space left on device".

Faults: each request pays `latency_ms`; writes are throttled by `bandwidth_bytes_per_s` and count towards
`drop_after_sftp_bytes` (see `macsim.faults` for the per-connection counting).
"""

from __future__ import annotations

import errno
import os
import posixpath
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO

import asyncssh
from asyncssh import SFTPAttrs, SFTPName

from macsim.faults import ConnState, apply_latency, sftp_allowance, throttle
from macsim.mac import VirtualMac
from macsim.spec import HostSpec
from macsim.vfs import ROOT_UID, VfsError

UMASK = 0o022  # macOS sshd's default
STAFF_GID = 20  # a macOS user's primary group
WHEEL_GID = 0


class _Handle:
    """An open file: the real file and the macOS path it was opened as."""

    def __init__(self, path: str, f: IO[bytes], writable: bool, budget: int = 0) -> None:
        self.path = path
        self.f = f
        self.writable = writable
        self.budget = budget  # bytes this handle may still grow the disk by (free space at open)


def _denied(err: VfsError) -> asyncssh.SFTPError:
    """OpenSSH's sftp-server maps both EACCES and EPERM to SSH_FX_PERMISSION_DENIED."""
    return asyncssh.SFTPPermissionDenied(os.strerror(err.errno or errno.EACCES))


class MacSFTPServer(asyncssh.SFTPServer):
    """One SFTP session for the spec's user on one VirtualMac."""

    def __init__(
        self,
        chan: asyncssh.SSHServerChannel[bytes],
        mac: VirtualMac,
        spec: HostSpec,
        conn: ConnState,
        reset: Callable[[], None],
    ) -> None:
        super().__init__(chan)
        self.mac = mac
        self.fs = mac.fs
        self.spec = spec
        self.uid = spec.uid
        self.home = f"/Users/{spec.user}"
        self._conn = conn
        self._reset = reset

    # ---- helpers ------------------------------------------------------------------------------
    def _path(self, path: bytes) -> str:
        """The client's path as an absolute, lexically normalized macOS path."""
        return self.fs.normalize(path.decode("utf-8", "surrogateescape") or ".", self.home)

    def _real_nofollow(self, vpath: str) -> Path:
        """On-disk path for vpath, resolving symlinks in the parents only (for lstat, readlink, remove)."""
        if vpath == "/":
            return self.fs.root
        parent = self.fs.canonical(posixpath.dirname(vpath))
        return self.fs.root / parent.lstrip("/") / posixpath.basename(vpath)

    def _nofollow_vpath(self, vpath: str) -> str:
        if vpath == "/":
            return "/"
        return posixpath.join(self.fs.canonical(posixpath.dirname(vpath)), posixpath.basename(vpath))

    def _check(self, fn: Callable[[str, int], None], vpath: str) -> None:
        try:
            fn(vpath, self.uid)
        except VfsError as e:
            if e.errno in (errno.EACCES, errno.EPERM):
                raise _denied(e) from None
            raise

    def _attrs(self, st: os.stat_result, vpath: str) -> SFTPAttrs:
        attrs = SFTPAttrs.from_local(st)
        owner = self.fs.owner(vpath)
        attrs.uid = owner
        attrs.gid = STAFF_GID if owner != ROOT_UID else WHEEL_GID
        return attrs

    async def _gate(self) -> None:
        await apply_latency(self.spec.faults)

    def format_user(self, uid: int | None) -> str:
        if uid == self.uid:
            return self.spec.user
        return "root" if uid == ROOT_UID else str(uid)

    def format_group(self, gid: int | None) -> str:
        return {STAFF_GID: "staff", WHEEL_GID: "wheel"}.get(gid or 0, str(gid))

    # ---- paths --------------------------------------------------------------------------------
    async def realpath(self, path: bytes) -> bytes:
        await self._gate()
        vpath = self._path(path)
        self._check(self.fs.check_traverse, vpath)
        return self.fs.canonical(vpath).encode("utf-8", "surrogateescape")

    async def stat(self, path: bytes) -> SFTPAttrs:
        await self._gate()
        vpath = self._path(path)
        self._check(self.fs.check_traverse, vpath)
        canon = self.fs.canonical(vpath)
        try:
            st = (self.fs.root / canon.lstrip("/")).stat()
        except FileNotFoundError:
            raise VfsError(errno.ENOENT, vpath) from None
        return self._attrs(st, canon)

    async def lstat(self, path: bytes) -> SFTPAttrs:
        await self._gate()
        vpath = self._path(path)
        self._check(self.fs.check_traverse, vpath)
        try:
            st = self._real_nofollow(vpath).lstat()
        except FileNotFoundError:
            raise VfsError(errno.ENOENT, vpath) from None
        return self._attrs(st, self._nofollow_vpath(vpath))

    async def readlink(self, path: bytes) -> bytes:
        await self._gate()
        vpath = self._path(path)
        self._check(self.fs.check_traverse, vpath)
        real = self._real_nofollow(vpath)
        if not real.is_symlink():
            raise VfsError(errno.EINVAL if real.exists() else errno.ENOENT, vpath)
        return os.readlink(real).encode("utf-8", "surrogateescape")

    async def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        await self._gate()
        target = oldpath.decode("utf-8", "surrogateescape")
        vnew = self._path(newpath)
        self._check(self.fs.check_create, vnew)
        real = self._real_nofollow(vnew)
        if real.exists() or real.is_symlink():
            raise VfsError(errno.EEXIST, vnew)
        os.symlink(target, real)
        # No owner record: the vfs owner table follows symlinks, so recording one here would give the
        # user ownership of the link's target path instead.

    async def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("Hard links are not supported")

    # ---- directories ---------------------------------------------------------------------------
    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        await self._gate()
        vpath = self._path(path)
        self._check(self.fs.check_read, vpath)
        canon = self.fs.canonical(vpath)
        real = self.fs.root / canon.lstrip("/")
        if not real.is_dir():
            raise VfsError(errno.ENOTDIR, vpath)
        yield SFTPName(b".", attrs=self._attrs(real.stat(), canon))
        parent = posixpath.dirname(canon)
        yield SFTPName(b"..", attrs=self._attrs((self.fs.root / parent.lstrip("/")).stat(), parent))
        with os.scandir(real) as entries:
            for entry in entries:
                child = posixpath.join(canon, entry.name)
                attrs = self._attrs(entry.stat(follow_symlinks=False), child)
                yield SFTPName(os.fsencode(entry.name), attrs=attrs)

    async def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        await self._gate()
        vpath = self._path(path)
        self._check(self.fs.check_create, vpath)
        real = self._real_nofollow(vpath)
        if real.exists() or real.is_symlink():
            raise VfsError(errno.EEXIST, vpath)
        mode = 0o777 if attrs.permissions is None else attrs.permissions & 0o7777
        real.mkdir()
        os.chmod(real, mode & ~UMASK)
        self.fs.set_owner(self._nofollow_vpath(vpath), self.uid)

    async def rmdir(self, path: bytes) -> None:
        await self._gate()
        vpath = self._path(path)
        self._check(self.fs.check_remove, vpath)
        real = self._real_nofollow(vpath)
        if not real.is_dir() or real.is_symlink():
            raise VfsError(errno.ENOTDIR if real.exists() else errno.ENOENT, vpath)
        real.rmdir()  # OSError ENOTEMPTY maps to SSH_FX_DIR_NOT_EMPTY
        self.fs.forget(self._nofollow_vpath(vpath))

    # ---- files --------------------------------------------------------------------------------
    async def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> _Handle:
        await self._gate()
        vpath = self._path(path)
        writing = bool(pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND | asyncssh.FXF_TRUNC))
        reading = bool(pflags & asyncssh.FXF_READ) or not writing
        real = self.fs.real(vpath)
        exists = real.exists()
        if exists and pflags & asyncssh.FXF_EXCL and pflags & asyncssh.FXF_CREAT:
            raise VfsError(errno.EEXIST, vpath)
        if not exists and not pflags & asyncssh.FXF_CREAT:
            self._check(self.fs.check_traverse, vpath)
            raise VfsError(errno.ENOENT, vpath)
        if exists:
            if real.is_dir():
                raise VfsError(errno.EISDIR, vpath)
            if reading:
                self._check(self.fs.check_read, vpath)
            if writing:
                self._check(self.fs.check_write, vpath)
        else:
            self._check(self.fs.check_create, vpath)
        flags = os.O_RDWR if reading and writing else os.O_WRONLY if writing else os.O_RDONLY
        if pflags & asyncssh.FXF_APPEND:
            flags |= os.O_APPEND
        if pflags & asyncssh.FXF_CREAT:
            flags |= os.O_CREAT
        if pflags & asyncssh.FXF_TRUNC:
            flags |= os.O_TRUNC
        mode = (0o666 if attrs.permissions is None else attrs.permissions & 0o7777) & ~UMASK
        fd = os.open(real, flags, mode)
        if not exists:
            os.fchmod(fd, mode)  # independent of this process's own umask
            self.fs.set_owner(vpath, self.uid)
        f = os.fdopen(fd, "r+b" if reading and writing else "wb" if writing else "rb", buffering=0)
        budget = self.mac.free_bytes() if writing else 0  # measured once per open: it walks the disk
        return _Handle(self.fs.canonical(vpath), f, writing, budget)

    async def close(self, file_obj: object) -> None:
        await self._gate()
        assert isinstance(file_obj, _Handle)
        file_obj.f.close()

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        await self._gate()
        assert isinstance(file_obj, _Handle)
        file_obj.f.seek(offset)
        return file_obj.f.read(size) or b""

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        await self._gate()
        assert isinstance(file_obj, _Handle)
        if not file_obj.writable:
            raise asyncssh.SFTPPermissionDenied("File not open for writing")
        size = os.fstat(file_obj.f.fileno()).st_size
        growth = max(0, offset + len(data) - size)
        if growth > file_obj.budget:
            raise VfsError(errno.ENOSPC, file_obj.path)  # the volume is full (free_space_mb)
        file_obj.budget -= growth
        faults = self.spec.faults
        allowed, drop = sftp_allowance(self._conn, faults, len(data))
        await throttle(self._conn, faults, allowed)
        if allowed:
            file_obj.f.seek(offset)
            file_obj.f.write(data[:allowed])
        if drop:
            file_obj.f.close()
            self._reset()
            raise asyncssh.SFTPConnectionLost("Connection reset by fault injection")
        return len(data)

    async def fstat(self, file_obj: object) -> SFTPAttrs:
        await self._gate()
        assert isinstance(file_obj, _Handle)
        return self._attrs(os.fstat(file_obj.f.fileno()), file_obj.path)

    async def fsync(self, file_obj: object) -> None:
        await self._gate()
        assert isinstance(file_obj, _Handle)
        os.fsync(file_obj.f.fileno())

    # ---- attributes ---------------------------------------------------------------------------
    def _setattrs(self, vpath: str, real: Path | int, attrs: SFTPAttrs) -> None:
        """Apply attrs with macOS's rules: mode/times by the owner, size by a writer, chown by root only."""
        owner = self.fs.owner(vpath)
        if attrs.uid is not None or attrs.gid is not None:
            same_uid = attrs.uid in (None, owner)
            same_gid = attrs.gid is None or attrs.gid == (STAFF_GID if owner != ROOT_UID else WHEEL_GID)
            if not (same_uid and same_gid):
                raise asyncssh.SFTPPermissionDenied(os.strerror(errno.EPERM))
        if attrs.size is not None:
            self._check(self.fs.check_write, vpath)
            os.truncate(real, attrs.size)
        if attrs.permissions is not None:
            self._check(self.fs.check_chmod, vpath)
            os.chmod(real, attrs.permissions & 0o7777)
        if attrs.atime is not None or attrs.mtime is not None:
            if owner != self.uid:
                self._check(self.fs.check_write, vpath)
            st = os.stat(real)
            atime = st.st_atime if attrs.atime is None else attrs.atime
            mtime = st.st_mtime if attrs.mtime is None else attrs.mtime
            os.utime(real, (atime, mtime))

    async def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        await self._gate()
        vpath = self._path(path)
        self._check(self.fs.check_traverse, vpath)
        real = self.fs.real(vpath)
        if not real.exists():
            raise VfsError(errno.ENOENT, vpath)
        self._setattrs(self.fs.canonical(vpath), real, attrs)

    async def lsetstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        raise asyncssh.SFTPOpUnsupported("lsetstat is not supported")

    async def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        await self._gate()
        assert isinstance(file_obj, _Handle)
        self._setattrs(file_obj.path, self.fs.real(file_obj.path), attrs)

    async def statvfs(self, path: bytes) -> asyncssh.SFTPVFSAttrs:
        await self._gate()
        vpath = self._path(path)
        self._check(self.fs.check_traverse, vpath)
        return asyncssh.SFTPVFSAttrs.from_local(os.statvfs(self.fs.real(vpath)))

    # ---- remove and rename --------------------------------------------------------------------
    async def remove(self, path: bytes) -> None:
        await self._gate()
        vpath = self._path(path)
        self._check(self.fs.check_remove, vpath)
        real = self._real_nofollow(vpath)
        if not real.exists() and not real.is_symlink():
            raise VfsError(errno.ENOENT, vpath)
        if real.is_dir() and not real.is_symlink():
            # unlink(2) on a directory is EPERM on macOS; OpenSSH reports it as permission denied
            raise asyncssh.SFTPPermissionDenied(os.strerror(errno.EPERM))
        was_link = real.is_symlink()
        real.unlink()
        if not was_link:  # the owner table follows links: forgetting a link would forget its target
            self.fs.forget(self._nofollow_vpath(vpath))

    def _check_rename(self, vold: str, vnew: str) -> tuple[Path, Path]:
        self._check(self.fs.check_remove, vold)
        self._check(self.fs.check_create, vnew)
        old, new = self._real_nofollow(vold), self._real_nofollow(vnew)
        if not old.exists() and not old.is_symlink():
            raise VfsError(errno.ENOENT, vold)
        if new.exists():
            self._check(self.fs.check_remove, vnew)
        return old, new

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._gate()
        vold, vnew = self._path(oldpath), self._path(newpath)
        old, new = self._check_rename(vold, vnew)
        if new.exists() or new.is_symlink():
            # SFTP v3 rename does not replace (OpenSSH sftp-server links then unlinks: EEXIST -> failure)
            raise asyncssh.SFTPFailure("File already exists")
        self._do_rename(vold, vnew, old, new)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._gate()
        vold, vnew = self._path(oldpath), self._path(newpath)
        old, new = self._check_rename(vold, vnew)
        self._do_rename(vold, vnew, old, new)

    def _do_rename(self, vold: str, vnew: str, old: Path, new: Path) -> None:
        src, dst = self._nofollow_vpath(vold), self._nofollow_vpath(vnew)
        os.replace(old, new)
        self.fs.forget(dst)
        self.fs.moved(src, dst)

    def exit(self) -> None:
        """End the session as sshd ends OpenSSH's sftp-server: with exit status 0 on the channel.

        asyncssh closes the subsystem channel without one; OpenSSH's `scp` (SFTP mode, the default since
        OpenSSH 9) then sees ssh exit 255 and fails with status 1 although every file arrived."""
        self.channel.exit(0)  # no-op once the channel is closing (a reset connection)
