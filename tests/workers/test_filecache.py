"""FileVersionCache: computed once per version of a settled file, again for a fresh or changed one."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from workers.ssh.filecache import FileVersionCache


def _counting(calls: list[Path]) -> Callable[[Path], bytes]:
    def compute(p: Path) -> bytes:
        calls.append(p)
        return p.read_bytes()

    return compute


def test_settled_file_is_computed_once_per_version(tmp_path: Path) -> None:
    f = tmp_path / "a"
    f.write_bytes(b"one")
    old = time.time() - 60
    os.utime(f, (old, old))
    cache: FileVersionCache[bytes] = FileVersionCache(limit=4)
    calls: list[Path] = []
    compute = _counting(calls)
    assert cache.get(f, compute) == b"one" and cache.get(f, compute) == b"one"
    assert len(calls) == 1
    f.write_bytes(b"two")  # same size, new mtime: a new version
    os.utime(f, (old + 1, old + 1))
    assert cache.get(f, compute) == b"two" and len(calls) == 2


def test_a_file_written_just_now_is_not_remembered(tmp_path: Path) -> None:
    f = tmp_path / "a"
    f.write_bytes(b"fresh")  # within the timestamp granularity a rewrite could keep its stamp
    cache: FileVersionCache[bytes] = FileVersionCache(limit=4)
    calls: list[Path] = []
    compute = _counting(calls)
    cache.get(f, compute)
    cache.get(f, compute)
    assert len(calls) == 2


async def test_a_private_key_file_is_parsed_once_per_version(tmp_path: Path) -> None:
    """The controller offers the same key to every Mac: parsed once per version of the file, and a key
    replaced on disk is the one offered next (a passphrase-protected key is never remembered)."""
    import asyncssh

    from workers.ssh import SshAuth, SshTarget
    from workers.ssh.connect import _load_keys

    path = tmp_path / "id_ed25519"
    target = SshTarget(host="127.0.0.1", username="admin", port=22)
    old = time.time() - 60
    path.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    os.utime(path, (old, old))
    (first,), _ = await _load_keys(target, SshAuth(key_files=(path,)))
    (again,), _ = await _load_keys(target, SshAuth(key_files=(path,)))
    assert again is first
    path.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    os.utime(path, (old + 1, old + 1))
    (new,), _ = await _load_keys(target, SshAuth(key_files=(path,)))
    assert new.public_data != first.public_data
    locked = tmp_path / "id_locked"
    locked.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key("pkcs8-pem", passphrase="pw"))
    os.utime(locked, (old, old))
    (a,), _ = await _load_keys(target, SshAuth(key_files=(locked,), key_passphrase=b"pw"))
    (b,), _ = await _load_keys(target, SshAuth(key_files=(locked,), key_passphrase=b"pw"))
    assert a is not b
