"""Uploading a file to a Mac: private directory, temporary name, SHA-256 checked on the Mac, atomic rename.

Order of operations (each a promise the callers rely on):
1. `remote_dir` exists as a real directory (not a symlink) with mode 0700 (created over SFTP if missing).
2. If `remote_dir/name` already holds the same SHA-256 (e.g. a DMG left by an earlier run), nothing is sent:
   `skipped=True`.
3. Otherwise the bytes go to `.NAME.part-RANDOM` created 0600, streamed from the file as parallel SFTP
   writes with at most the upload window in flight, and no more than the process budget over all
   uploads (`workers.ssh.inflight`: memory stays bounded for any file size and concurrency); then
   `shasum -a 256` runs on the Mac; a different hash removes the temporary file and raises UploadError.
4. The mode is set and the file is renamed over the final name with posix-rename (atomic). So a dropped
   connection leaves at most a `.part-` file, never a partial file under the final name; the next attempt
   removes stale `.part-` files of the same name first.
"""

from __future__ import annotations

import asyncio
import hashlib
import posixpath
import secrets
import stat
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh

from workers.ssh.errors import ConnectionLost, TransportError, Unreachable, UploadError
from workers.ssh.filecache import FileVersionCache
from workers.ssh.inflight import write_pipelined

if TYPE_CHECKING:
    from workers.ssh.connect import Connection

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes sent so far, total bytes) while a file is sent."""

_HASH_CHUNK = 1024 * 1024
_PART = ".part-"


@dataclass(frozen=True)
class UploadResult:
    """Where the file now is, its SHA-256 (hex), whether the upload was skipped, its size, and how many
    attempts it took (`upload_with_retry`)."""

    path: str
    sha256: str
    skipped: bool
    bytes: int
    attempts: int = 1


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\x00" in name or "\n" in name:
        raise ValueError(f"invalid remote file name {name!r}: a plain name, no '/' or line breaks")


_CREATED_MODE = 0o600  # a temporary is created with it (a umask only takes bits away: it stays 0600)
_DIGESTS: FileVersionCache[tuple[str, int]] = FileVersionCache(limit=64)


def _local_digest(source: Path | bytes) -> tuple[str, int]:
    """SHA-256 and size. A local file's digest is remembered per version of the file: a run sends the same
    DMG to every Mac, and hashing it once per device cost the controller more CPU than sending it (the
    Mac-side hash check still catches a file changed behind the cache's back)."""
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest(), len(source)
    return _DIGESTS.get(source, _hash_file)


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _lost(conn: Connection, exc: BaseException) -> ConnectionLost:
    return ConnectionLost(
        conn.target.host,
        conn.target.port,
        f"connection lost during upload: {exc}",
        "retry the upload (nothing was left under the final name)",
    )


# How a dropped link shows up during an SFTP transfer.
_DROPPED = (
    asyncssh.SFTPConnectionLost,
    asyncssh.SFTPNoConnection,
    asyncssh.DisconnectError,
    asyncssh.ChannelOpenError,
    ConnectionError,
)


def _sftp_refused(conn: Connection, exc: asyncssh.SFTPError, where: str) -> TransportError:
    """A plain SFTPError: a drop when the connection is closed (asyncssh reports some drops so, "Connection
    not open"), else the server's refusal."""
    if conn.is_closed:
        return _lost(conn, exc)
    return UploadError(
        conn.target.host,
        conn.target.port,
        f"SFTP refused an operation {where}: {exc.reason}",
        "check the account's permissions and free space on the Mac",
    )


async def remote_sha256(conn: Connection, path: str) -> str | None:
    """SHA-256 (hex) of a file on the Mac by `shasum -a 256`, or None when shasum cannot read it."""
    result = await conn.run(["shasum", "-a", "256", path], timeout=max(conn.timeouts.command, 60.0))
    if result.exit_status != 0:
        return None
    # shasum prefixes the line with "\" when the file name needs escaping; the hash is the first word.
    first = result.stdout.split(b" ", 1)[0].lstrip(b"\\").decode("ascii", "replace").lower()
    if len(first) != 64 or any(c not in "0123456789abcdef" for c in first):
        return None
    return first


async def _ensure_private_dir(conn: Connection, sftp: asyncssh.SFTPClient, remote_dir: str) -> bool:
    """Make remote_dir a 0700 directory; True when it was created here (so it holds nothing yet).

    One request in the usual case (a new directory in an existing parent): sftp-server creates it with
    `mkdir(path, 0700)`, and a umask can only remove bits, so it is private without a `chmod`. An existing
    path is checked (a directory, not a symlink) and made exactly 0700; a missing parent is created."""
    try:
        await sftp.mkdir(remote_dir, asyncssh.SFTPAttrs(permissions=0o700))
        return True
    except asyncssh.SFTPNoSuchFile:  # the parent is missing (sftp-server: ENOENT)
        await sftp.makedirs(remote_dir, attrs=asyncssh.SFTPAttrs(permissions=0o700))
        return True
    except (asyncssh.SFTPFailure, asyncssh.SFTPFileAlreadyExists) as refused:  # EEXIST (v3: a failure)
        try:
            attrs = await sftp.lstat(remote_dir)
        except asyncssh.SFTPNoSuchFile:
            raise refused from None  # not there after all: the mkdir's own reason (a full disk...)
    if attrs.permissions is None or not stat.S_ISDIR(attrs.permissions):
        raise UploadError(
            conn.target.host,
            conn.target.port,
            f"{remote_dir} exists and is not a directory (or is a symlink)",
            "remove it on the Mac or choose another working directory",
        )
    if stat.S_IMODE(attrs.permissions) != 0o700:
        await sftp.chmod(remote_dir, 0o700)
    return False


async def _remove_stale_parts(sftp: asyncssh.SFTPClient, remote_dir: str, names: Sequence[str]) -> None:
    """Remove temporaries an interrupted upload of any of `names` left (one directory listing for all)."""
    prefixes = tuple(f".{name}{_PART}" for name in names)
    for entry in await sftp.readdir(remote_dir):
        filename = str(entry.filename)
        if filename.startswith(prefixes):
            try:
                await sftp.remove(posixpath.join(remote_dir, filename))
            except asyncssh.SFTPNoSuchFile:
                pass


async def _send(
    sftp: asyncssh.SFTPClient, source: Path | bytes, tmp: str, size: int, progress: ProgressCallback | None
) -> None:
    # Created 0600 and written through the same handle, so the content is never readable by others even
    # for a moment; streamed a block at a time within the upload window and the process budget
    # (workers.ssh.inflight), so memory does not grow with the file's size or the number of Macs.
    async with sftp.open(tmp, "wb", asyncssh.SFTPAttrs(permissions=_CREATED_MODE)) as fh:
        await write_pipelined(fh, source, size, progress)


async def upload(
    conn: Connection,
    source: Path | bytes,
    remote_dir: str,
    name: str,
    *,
    mode: int = 0o600,
    progress: ProgressCallback | None = None,
) -> UploadResult:
    """Place `source` (a local file or bytes) at `remote_dir/name` with `mode`, as described above.

    Raises ConnectionLost (retry: nothing partial under the final name), UploadError (hash mismatch,
    remote_dir not a directory, SFTP refused), ValueError for a bad name or mode, OSError for an unreadable
    local file."""
    _check_name(name)
    if not 0 <= mode <= 0o777:
        raise ValueError(f"mode {mode:o} is not a permission mode (0-0777)")
    if isinstance(source, Path):
        sha, size = await asyncio.to_thread(_local_digest, source)
    else:
        sha, size = _local_digest(source)
    final = posixpath.join(remote_dir, name)
    try:
        async with conn.ssh.start_sftp_client() as sftp:
            fresh = await _ensure_private_dir(conn, sftp, remote_dir)
            existing = None
            if not fresh:  # a new directory holds nothing: no file to skip, no stale part to remove
                try:
                    existing = await sftp.lstat(final)
                except asyncssh.SFTPNoSuchFile:
                    pass
            if (
                existing is not None
                and existing.permissions is not None
                and stat.S_ISREG(existing.permissions)
                and existing.size == size
                and await remote_sha256(conn, final) == sha
            ):
                await sftp.chmod(final, mode)
                return UploadResult(path=final, sha256=sha, skipped=True, bytes=size)

            if not fresh:
                await _remove_stale_parts(sftp, remote_dir, [name])
            tmp = posixpath.join(remote_dir, f".{name}{_PART}{secrets.token_hex(6)}")
            await _send(sftp, source, tmp, size, progress)
            remote = await remote_sha256(conn, tmp)
            if remote != sha:
                await sftp.remove(tmp)
                raise UploadError(
                    conn.target.host,
                    conn.target.port,
                    f"{final}: SHA-256 on the Mac is {remote or 'unreadable'}, expected {sha}",
                    "the bytes were damaged in transit or the disk is full; retry, check free space",
                )
            if mode != _CREATED_MODE:
                await sftp.chmod(tmp, mode)
            await sftp.posix_rename(tmp, final)
    except _DROPPED as exc:
        raise _lost(conn, exc) from None
    except asyncssh.SFTPError as exc:
        raise _sftp_refused(conn, exc, f"on {final}") from None
    return UploadResult(path=final, sha256=sha, skipped=False, bytes=size)


async def upload_with_retry(
    reconnect: Callable[[], Awaitable[Connection]],
    source: Path | bytes,
    remote_dir: str,
    name: str,
    *,
    mode: int = 0o600,
    attempts: int = 3,
    backoff: float = 0.5,
    progress: ProgressCallback | None = None,
) -> UploadResult:
    """`upload` that survives dropped connections: each attempt asks `reconnect()` for a live Connection
    (the caller reuses or reopens one) and retries on ConnectionLost/Unreachable, sleeping backoff x n.

    Raises the last ConnectionLost/Unreachable after `attempts` tries, or any other TransportError at once."""
    async def once(conn: Connection) -> list[UploadResult]:
        return [await upload(conn, source, remote_dir, name, mode=mode, progress=progress)]

    return (await _with_retry(reconnect, once, attempts, backoff))[0]


@dataclass(frozen=True)
class UploadItem:
    """One file for `upload_many`: what to send, its final name in the directory, its mode."""

    source: Path | bytes
    name: str
    mode: int = 0o600


async def remote_sha256_many(conn: Connection, paths: Sequence[str]) -> dict[str, str | None]:
    """SHA-256 of several files in ONE exec (`shasum -a 256 P...`); None for a file shasum could not read."""
    if not paths:
        return {}
    result = await conn.run(["shasum", "-a", "256", "--", *paths], timeout=max(conn.timeouts.command, 60.0))
    found: dict[str, str | None] = dict.fromkeys(paths)
    for raw in result.stdout.decode("utf-8", "replace").splitlines():
        digest, sep, rest = raw.lstrip("\\").partition(" ")
        path = rest[1:] if rest.startswith(("*", " ")) else rest
        digest = digest.lower()
        if sep and path in found and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
            found[path] = digest
    return found


async def upload_many(
    conn: Connection,
    items: Sequence[UploadItem],
    remote_dir: str,
    *,
    progress: ProgressCallback | None = None,
) -> list[UploadResult]:
    """`upload` for several files with the same promises, in at most two execs in all: one `shasum` over
    same-size files already there (skip candidates) and one over every temporary file sent. Files are sent
    concurrently on one SFTP session. Raises as `upload`."""
    for item in items:
        _check_name(item.name)
    digests = [await asyncio.to_thread(_local_digest, i.source) if isinstance(i.source, Path)
               else _local_digest(i.source) for i in items]
    finals = [posixpath.join(remote_dir, i.name) for i in items]
    results: dict[int, UploadResult] = {}
    try:
        async with conn.ssh.start_sftp_client() as sftp:
            fresh = await _ensure_private_dir(conn, sftp, remote_dir)
            same_size: list[int] = []
            for index, final in enumerate([] if fresh else finals):  # a new directory holds nothing
                try:
                    attrs = await sftp.lstat(final)
                except asyncssh.SFTPNoSuchFile:
                    continue
                if attrs.permissions is not None and stat.S_ISREG(attrs.permissions) \
                        and attrs.size == digests[index][1]:
                    same_size.append(index)
            there = await remote_sha256_many(conn, [finals[i] for i in same_size])
            for index in same_size:
                if there[finals[index]] == digests[index][0]:
                    await sftp.chmod(finals[index], items[index].mode)
                    results[index] = UploadResult(finals[index], digests[index][0], True, digests[index][1])
            todo = [i for i in range(len(items)) if i not in results]
            temps: dict[int, str] = {}
            if todo and not fresh:
                await _remove_stale_parts(sftp, remote_dir, [items[i].name for i in todo])
            for index in todo:
                tmp_name = f".{items[index].name}{_PART}{secrets.token_hex(6)}"
                temps[index] = posixpath.join(remote_dir, tmp_name)
            await asyncio.gather(*(
                _send(sftp, items[i].source, temps[i], digests[i][1], progress) for i in todo
            ))
            sent = await remote_sha256_many(conn, list(temps.values()))
            bad = [i for i in todo if sent[temps[i]] != digests[i][0]]
            if bad:
                for index in todo:
                    await sftp.remove(temps[index])
                raise UploadError(
                    conn.target.host,
                    conn.target.port,
                    "SHA-256 on the Mac differs for " + ", ".join(finals[i] for i in bad),
                    "the bytes were damaged in transit or the disk is full; retry, check free space",
                )
            for index in todo:
                if items[index].mode != _CREATED_MODE:  # created with it: a chmod would be a round trip more
                    await sftp.chmod(temps[index], items[index].mode)
                await sftp.posix_rename(temps[index], finals[index])
                results[index] = UploadResult(finals[index], digests[index][0], False, digests[index][1])
    except _DROPPED as exc:
        raise _lost(conn, exc) from None
    except asyncssh.SFTPError as exc:
        raise _sftp_refused(conn, exc, f"in {remote_dir}") from None
    return [results[i] for i in range(len(items))]


async def upload_many_with_retry(
    reconnect: Callable[[], Awaitable[Connection]],
    items: Sequence[UploadItem],
    remote_dir: str,
    *,
    attempts: int = 3,
    backoff: float = 0.5,
) -> list[UploadResult]:
    """`upload_many` retried on ConnectionLost/Unreachable like `upload_with_retry` (files that arrived
    whole in an earlier attempt are skipped by their hash)."""
    async def once(conn: Connection) -> list[UploadResult]:
        return await upload_many(conn, items, remote_dir)

    return await _with_retry(reconnect, once, attempts, backoff)


async def _with_retry(
    reconnect: Callable[[], Awaitable[Connection]],
    once: Callable[[Connection], Awaitable[list[UploadResult]]],
    attempts: int,
    backoff: float,
) -> list[UploadResult]:
    """Run `once` on `reconnect()`'s connection until it succeeds, retrying ConnectionLost/Unreachable
    (sleeping backoff x n); the results carry the attempt count. Raises the last such error after
    `attempts` tries, or any other TransportError at once."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    last: TransportError | None = None
    for attempt in range(1, attempts + 1):
        try:
            done = await once(await reconnect())
        except (ConnectionLost, Unreachable) as exc:
            last = exc
            if attempt < attempts:
                await asyncio.sleep(backoff * attempt)
            continue
        return [UploadResult(r.path, r.sha256, r.skipped, r.bytes, attempts=attempt) for r in done]
    assert last is not None
    raise last
