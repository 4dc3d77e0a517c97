"""upload / upload_with_retry against a real OpenSSH sshd (SFTP + `shasum -a 256` over exec)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests.workers.sshd import Sshd
from workers.ssh import (
    Connection,
    ConnectionLost,
    HostKeyPolicy,
    SshAuth,
    SshTarget,
    Timeouts,
    UploadError,
    connect,
    upload,
    upload_with_retry,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _parts(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if ".part-" in p.name]


async def test_upload_bytes_private_dir_and_mode(conn: Connection, tmp_path: Path) -> None:
    run_dir = tmp_path / "run-1" / "private"
    data = b"PFX bytes \x00\xff" * 1000
    result = await upload(conn, data, str(run_dir), "device.p12")
    final = run_dir / "device.p12"
    assert final.read_bytes() == data
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert (result.skipped, result.bytes, result.path) == (False, len(data), str(final))
    assert _mode(final) == 0o600
    assert _mode(run_dir) == 0o700
    assert _parts(run_dir) == []


async def test_same_content_is_skipped_and_not_rewritten(conn: Connection, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    first = await upload(conn, data, str(tmp_path / "d"), "client.dmg")
    final = tmp_path / "d" / "client.dmg"
    inode = final.stat().st_ino
    trips = conn.round_trips
    again = await upload(conn, data, str(tmp_path / "d"), "client.dmg")
    assert again.skipped is True and again.sha256 == first.sha256
    assert final.stat().st_ino == inode  # the file was not replaced
    assert conn.round_trips == trips + 1  # one shasum, nothing else over exec


async def test_different_content_replaces_the_file_atomically(conn: Connection, tmp_path: Path) -> None:
    await upload(conn, b"old" * 10, str(tmp_path / "d"), "f")
    result = await upload(conn, b"new!" * 10, str(tmp_path / "d"), "f")
    assert result.skipped is False
    assert (tmp_path / "d" / "f").read_bytes() == b"new!" * 10
    assert _parts(tmp_path / "d") == []


async def test_upload_file_with_progress_and_mode(conn: Connection, tmp_path: Path) -> None:
    local = tmp_path / "local.bin"
    local.write_bytes(os.urandom(5 * 1024 * 1024 + 3))
    seen: list[tuple[int, int]] = []
    result = await upload(conn,
        local, str(tmp_path / "remote"), "install.sh", mode=0o700, progress=lambda d, t: seen.append((d, t))
    )
    final = tmp_path / "remote" / "install.sh"
    assert final.read_bytes() == local.read_bytes()
    assert result.sha256 == hashlib.sha256(local.read_bytes()).hexdigest()
    assert _mode(final) == 0o700
    assert seen and seen[-1] == (local.stat().st_size, local.stat().st_size)


async def test_existing_dir_is_made_private(conn: Connection, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    await upload(conn, b"x", str(shared), "a")
    assert _mode(shared) == 0o700


def _count_dir_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The directory requests `upload` makes (each a round trip the controller pays for)."""
    seen: list[str] = []
    for name in ("mkdir", "makedirs", "lstat", "stat", "chmod"):
        real = getattr(asyncssh.SFTPClient, name)

        def wrap(real: Any = real, name: str = name) -> Any:
            async def call(self: asyncssh.SFTPClient, path: Any, *a: Any, **k: Any) -> Any:
                seen.append(f"{name} {Path(os.fsdecode(path)).name}")
                return await real(self, path, *a, **k)
            return call

        monkeypatch.setattr(asyncssh.SFTPClient, name, wrap())
    return seen


async def test_a_new_private_dir_costs_one_request(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sshd's sftp-server makes the directory with mode 0700 less its umask: private without a chmod; an
    existing directory is checked, and made private only when it is not."""
    seen = _count_dir_requests(monkeypatch)
    await upload(conn, b"x", str(tmp_path / "fresh"), "a")
    assert seen == ["mkdir fresh"] and _mode(tmp_path / "fresh") == 0o700
    seen.clear()
    await upload(conn, b"y", str(tmp_path / "fresh"), "b")
    assert seen == ["mkdir fresh", "lstat fresh", "lstat b"]  # already private: no chmod
    (tmp_path / "fresh").chmod(0o755)
    seen.clear()
    await upload(conn, b"z", str(tmp_path / "fresh"), "c")
    assert seen == ["mkdir fresh", "lstat fresh", "chmod fresh", "lstat c"] and _mode(tmp_path / "fresh") == 0o700


async def test_symlinked_dir_is_refused(conn: Connection, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(UploadError, match="is not a directory"):
        await upload(conn, b"x", str(link), "a")
    assert list(real.iterdir()) == []


async def test_bad_names_are_refused(conn: Connection, tmp_path: Path) -> None:
    for name in ["", "..", "a/b", "x\ny"]:
        with pytest.raises(ValueError, match="invalid remote file name"):
            await upload(conn, b"x", str(tmp_path), name)
    with pytest.raises(ValueError, match="not a permission mode"):
        await upload(conn, b"x", str(tmp_path), "ok", mode=0o4777)


async def test_hash_mismatch_removes_the_temporary_and_raises(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    upload_mod = importlib.import_module("workers.ssh.upload")  # the package re-exports upload()

    async def wrong_hash(_conn: Connection, _path: str) -> str:
        return "0" * 64

    monkeypatch.setattr(upload_mod, "remote_sha256", wrong_hash)
    with pytest.raises(UploadError, match="SHA-256 on the Mac is 0000") as caught:
        await upload(conn, b"payload", str(tmp_path / "d"), "f")
    assert "check free space" in str(caught.value)
    assert list((tmp_path / "d").iterdir()) == []


async def test_connection_killed_mid_upload_leaves_no_final_file_then_retry_succeeds(
    sshd: Sshd, target: SshTarget, pinned: HostKeyPolicy, auth: SshAuth, timeouts: Timeouts, tmp_path: Path
) -> None:
    local = tmp_path / "big.dmg"
    local.write_bytes(os.urandom(16 * 1024 * 1024))
    remote = tmp_path / "remote"
    killed: list[int] = []

    def kill_once(done: int, total: int) -> None:
        # drop the connection the hard way (SIGKILL the per-connection sshd processes) a quarter in
        if not killed and 0 < done and done >= total // 4:
            killed.extend(sshd.kill_sessions())

    opened: list[Connection] = []

    async def reconnect() -> Connection:
        fresh = await connect(target, pinned, auth, timeouts)
        opened.append(fresh)
        return fresh

    try:
        first = await reconnect()
        with pytest.raises(ConnectionLost) as caught:
            await upload(first, local, str(remote), "client.dmg", progress=kill_once)
        assert killed, "the test did not manage to kill the connection mid-upload"
        assert f"127.0.0.1:{sshd.port}" in str(caught.value)
        assert not (remote / "client.dmg").exists()
        assert _parts(remote), "expected the partial temporary file to be left under its .part- name"

        result = await upload_with_retry(
            reconnect, local, str(remote), "client.dmg", attempts=3, backoff=0.01
        )
        assert result.attempts == 1 and result.skipped is False
        assert (remote / "client.dmg").read_bytes() == local.read_bytes()
        assert _parts(remote) == []  # the stale partial of the first attempt was cleaned up
    finally:
        for c in opened:
            await c.close()


async def test_upload_with_retry_reconnects_after_a_drop(
    sshd: Sshd, target: SshTarget, pinned: HostKeyPolicy, auth: SshAuth, timeouts: Timeouts, tmp_path: Path
) -> None:
    local = tmp_path / "pkg"
    local.write_bytes(os.urandom(12 * 1024 * 1024))
    killed: list[int] = []

    def kill_once(done: int, total: int) -> None:
        if not killed and done >= total // 3:
            killed.extend(sshd.kill_sessions())

    opened: list[Connection] = []

    async def reconnect() -> Connection:
        fresh = await connect(target, pinned, auth, timeouts)
        opened.append(fresh)
        return fresh

    try:
        result = await upload_with_retry(
            reconnect, local, str(tmp_path / "r"), "pkg", attempts=3, backoff=0.01, progress=kill_once
        )
    finally:
        for c in opened:
            await c.close()
    assert killed
    assert result.attempts == 2 and len(opened) == 2
    assert (tmp_path / "r" / "pkg").read_bytes() == local.read_bytes()
    assert _parts(tmp_path / "r") == []


async def test_upload_with_retry_gives_up_with_the_last_error(tmp_path: Path) -> None:
    calls = 0

    async def never() -> Connection:
        nonlocal calls
        calls += 1
        raise ConnectionLost("mac-01", 22, "dropped", "retry")

    with pytest.raises(ConnectionLost, match="mac-01:22: dropped"):
        await upload_with_retry(never, b"x", str(tmp_path), "f", attempts=3, backoff=0)
    assert calls == 3
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        await upload_with_retry(never, b"x", str(tmp_path), "f", attempts=0)


async def test_upload_many_sends_verifies_and_skips_in_two_execs(conn: Connection, tmp_path: Path) -> None:
    from workers.ssh import UploadItem, upload_many

    big = tmp_path / "client.dmg"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    items = [UploadItem(big, "client.dmg"), UploadItem(b"pfx", "client.p12"), UploadItem(b"ca", "ca 1.pem", 0o644)]
    remote = tmp_path / "run"
    trips = conn.round_trips
    first = await upload_many(conn, items, str(remote))
    assert conn.round_trips == trips + 1  # nothing there yet: one shasum over the temporaries
    assert [r.skipped for r in first] == [False, False, False]
    assert (remote / "client.dmg").read_bytes() == big.read_bytes()
    assert (remote / "ca 1.pem").read_bytes() == b"ca" and _mode(remote / "ca 1.pem") == 0o644
    assert _mode(remote / "client.p12") == 0o600 and _mode(remote) == 0o700
    assert _parts(remote) == []

    (remote / "client.p12").write_bytes(b"old")  # different size: sent again without a hash check
    trips = conn.round_trips
    again = await upload_many(conn, items, str(remote))
    assert [r.skipped for r in again] == [True, False, True]
    assert conn.round_trips == trips + 2  # one shasum over the same-size files, one over the temporary
    assert (remote / "client.p12").read_bytes() == b"pfx"


async def test_upload_many_hash_mismatch_leaves_nothing(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from workers.ssh import UploadItem, upload_many

    upload_mod = importlib.import_module("workers.ssh.upload")

    async def wrong(_conn: Connection, paths: list[str]) -> dict[str, str | None]:
        return dict.fromkeys(paths, "0" * 64)

    monkeypatch.setattr(upload_mod, "remote_sha256_many", wrong)
    with pytest.raises(UploadError, match="SHA-256 on the Mac differs"):
        await upload_many(conn, [UploadItem(b"a", "a"), UploadItem(b"b", "b")], str(tmp_path / "d"))
    assert list((tmp_path / "d").iterdir()) == []
