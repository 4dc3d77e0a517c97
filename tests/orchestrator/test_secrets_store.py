"""Stored secrets on both databases: round trip, upsert, wrong key, rotation, key files."""

from __future__ import annotations

import base64
import hashlib
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.engine import Engine

from orchestrator.config import Settings
from orchestrator.secrets import (
    SecretBox,
    SecretCorrupt,
    SecretError,
    SecretInUse,
    SecretKeyFileExists,
    SecretKeyInvalid,
    SecretKeyMismatch,
    SecretKeyMissing,
    SecretNotFound,
    delete_secret,
    init_key_file,
    key_id_of,
    list_secrets,
    load_secret,
    read_key_file,
    rotate_key,
    store_secret,
)
from orchestrator.state.db import session_scope
from orchestrator.state.models import ClientCertificate, Device, Secret

VALUE = b"p\xc3\xa4ss word'\"$(x)\n\x00end"  # quotes, shell syntax, NUL and non-ASCII survive


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", **kw)  # type: ignore[arg-type]


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(Fernet.generate_key())


def test_round_trip_by_name_and_id_and_ciphertext_is_not_the_value(engine: Engine, box: SecretBox) -> None:
    with session_scope(engine) as s:
        sec = store_secret(s, box, "lab-sudo", "sudo-password", VALUE)
        sid = sec.id
    with session_scope(engine) as s:
        assert load_secret(s, box, "lab-sudo") == VALUE
        assert load_secret(s, box, sid) == VALUE
        row = s.get(Secret, sid)
        assert row is not None
        assert VALUE not in row.ciphertext
        assert row.key_id == box.key_id
        assert row.created_at.tzinfo is not None


def test_store_is_an_upsert_by_name(engine: Engine, box: SecretBox) -> None:
    with session_scope(engine) as s:
        first = store_secret(s, box, "n1", "ssh-password", b"one").id
    with session_scope(engine) as s:
        again = store_secret(s, box, "n1", "sudo-password", b"two")
        assert again.id == first
    with session_scope(engine) as s:
        assert load_secret(s, box, "n1") == b"two"
        assert [(i.name, i.kind) for i in list_secrets(s)] == [("n1", "sudo-password")]


def test_bad_kind_name_and_type_are_refused(engine: Engine, box: SecretBox) -> None:
    with session_scope(engine) as s:
        with pytest.raises(ValueError, match=r"unknown secret kind .api-token.: expected one of pfx, "):
            store_secret(s, box, "x", "api-token", b"v")
        with pytest.raises(ValueError, match=r"invalid secret name 'has space'"):
            store_secret(s, box, "has space", "pfx", b"v")
        with pytest.raises(ValueError, match=r"invalid secret name ''"):
            store_secret(s, box, "", "pfx", b"v")
        with pytest.raises(TypeError, match="must be bytes"):
            store_secret(s, box, "x", "pfx", "text")  # type: ignore[arg-type]


def test_wrong_key_names_both_key_ids(engine: Engine, box: SecretBox) -> None:
    other = SecretBox(Fernet.generate_key())
    with session_scope(engine) as s:
        store_secret(s, box, "n", "pfx-password", VALUE)
    with session_scope(engine) as s, pytest.raises(SecretKeyMismatch) as ei:
        load_secret(s, other, "n")
    msg = str(ei.value)
    assert f"encrypted under key {box.key_id}, but the key supplied is {other.key_id}" in msg
    assert (ei.value.stored_key_id, ei.value.current_key_id) == (box.key_id, other.key_id)


def test_damaged_ciphertext_is_reported(engine: Engine, box: SecretBox) -> None:
    with session_scope(engine) as s:
        store_secret(s, box, "n", "pfx-password", VALUE)
    with engine.begin() as conn:
        conn.execute(text("UPDATE secret SET ciphertext = :c"), {"c": b"gAAAAA-garbage"})
    with session_scope(engine) as s, pytest.raises(SecretCorrupt, match="damaged; set the secret again"):
        load_secret(s, box, "n")


def test_missing_secret(engine: Engine, box: SecretBox) -> None:
    with session_scope(engine) as s, pytest.raises(SecretNotFound, match=r"no secret named 'ghost'"):
        load_secret(s, box, "ghost")
    with session_scope(engine) as s, pytest.raises(SecretNotFound):
        delete_secret(s, "ghost")


def test_delete_and_in_use(engine: Engine, box: SecretBox) -> None:
    now = datetime.now(UTC)
    with session_scope(engine) as s:
        pfx = store_secret(s, box, "mac1-pfx", "pfx", b"PFX")
        pw = store_secret(s, box, "mac1-pfx-pw", "pfx-password", b"pw")
        spare = store_secret(s, box, "spare", "ssh-password", b"pw")
        dev = Device(name="mac1", address="127.0.0.1")
        s.add(dev)
        s.flush()
        s.add(ClientCertificate(device_id=dev.id, sha1="a", sha256="b", subject="CN=mac1", issuer="CN=ca",
                                not_before=now, not_after=now, pfx_secret_id=pfx.id,
                                password_secret_id=pw.id))  # fmt: skip
        spare_id = spare.id
    with session_scope(engine) as s, pytest.raises(SecretInUse, match=r"'mac1-pfx' is used by 1 client cert"):
        delete_secret(s, "mac1-pfx")
    with session_scope(engine) as s:
        assert delete_secret(s, spare_id).name == "spare"
    with session_scope(engine) as s:
        assert [i.name for i in list_secrets(s)] == ["mac1-pfx", "mac1-pfx-pw"]


def test_key_id_is_a_fingerprint_not_the_key() -> None:
    key = Fernet.generate_key()
    kid = key_id_of(key)
    assert kid == hashlib.sha256(base64.urlsafe_b64decode(key)).hexdigest()[:16]
    assert key_id_of(key + b"\n") == kid
    assert kid not in key.decode()
    box = SecretBox(key)
    assert repr(box) == f"SecretBox(key_id={kid})"
    with pytest.raises(SecretKeyInvalid, match="not a Fernet key: expected 32 bytes"):
        SecretBox(b"too-short")


def test_from_settings_env_key_file_and_missing(tmp_path: Path) -> None:
    key = Fernet.generate_key()
    assert SecretBox.from_settings(_settings(tmp_path, secret_key=key.decode())).key_id == key_id_of(key)
    with pytest.raises(SecretKeyInvalid, match="ORCHESTRATE_SECRET_KEY is not a Fernet key"):
        SecretBox.from_settings(_settings(tmp_path, secret_key="nope"))
    st = _settings(tmp_path)
    with pytest.raises(SecretKeyMissing, match=r"secret.key does not exist .*`orchestrate secrets init`"):
        SecretBox.from_settings(st)
    made = init_key_file(st)
    assert SecretBox.from_settings(st).key_id == made.key_id


def test_init_key_file_is_0600_and_refuses_to_overwrite(tmp_path: Path) -> None:
    st = _settings(tmp_path)
    first = init_key_file(st)
    path = st.effective_secret_key_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.replaced_key_id is None
    with pytest.raises(SecretKeyFileExists, match=rf"already exists \(key {first.key_id}\); refusing"):
        init_key_file(st)
    second = init_key_file(st, force=True)
    assert second.replaced_key_id == first.key_id
    assert second.key_id != first.key_id
    old = path.with_name("secret.key.old")
    assert key_id_of(old.read_bytes()) == first.key_id
    assert stat.S_IMODE(old.stat().st_mode) == 0o600


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    st = _settings(tmp_path)
    init_key_file(st)
    st.effective_secret_key_file.chmod(0o644)
    with pytest.raises(SecretKeyInvalid, match=r"by group or others \(mode 0644\); run: chmod 600"):
        SecretBox.from_settings(st)


def test_garbage_key_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    p = tmp_path / "k"
    p.write_bytes(b"hunter2-not-a-key")
    p.chmod(0o600)
    with pytest.raises(SecretKeyInvalid) as ei:
        read_key_file(p)
    assert "does not hold a Fernet key" in str(ei.value)
    assert "hunter2" not in str(ei.value)


def test_rotate_reencrypts_everything_and_keeps_old_key(engine: Engine, tmp_path: Path) -> None:
    st = _settings(tmp_path)
    init_key_file(st)
    old = SecretBox.from_settings(st)
    with session_scope(engine) as s:
        for i in range(3):
            store_secret(s, old, f"s{i}", "ssh-password", VALUE + bytes([i]))
    res = rotate_key(engine, st)
    assert res.reencrypted == 3
    assert res.old_key_id == old.key_id
    new = SecretBox.from_settings(st)
    assert new.key_id == res.new_key_id != old.key_id
    key_file = st.effective_secret_key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_id_of(key_file.with_name("secret.key.old").read_bytes()) == old.key_id
    assert not key_file.with_name("secret.key.new").exists()
    with session_scope(engine) as s:
        for i in range(3):
            assert load_secret(s, new, f"s{i}") == VALUE + bytes([i])
        assert {i.key_id for i in list_secrets(s)} == {new.key_id}
        assert all(i.rotated_at is not None for i in list_secrets(s))
        with pytest.raises(SecretKeyMismatch):
            load_secret(s, old, "s0")


def test_rotate_is_atomic_when_a_secret_is_under_an_unknown_key(engine: Engine, tmp_path: Path) -> None:
    st = _settings(tmp_path)
    init_key_file(st)
    cur = SecretBox.from_settings(st)
    stranger = SecretBox(Fernet.generate_key())
    with session_scope(engine) as s:
        store_secret(s, cur, "a-good", "ssh-password", b"1")
        s.add(
            Secret(
                name="z-foreign",
                kind="ssh-password",
                ciphertext=stranger.encrypt(b"2"),
                key_id=stranger.key_id,
            )
        )
    before = st.effective_secret_key_file.read_bytes()
    with pytest.raises(SecretKeyMismatch, match=rf"'z-foreign' is encrypted under key {stranger.key_id}"):
        rotate_key(engine, st)
    assert st.effective_secret_key_file.read_bytes() == before
    with session_scope(engine) as s:
        assert load_secret(s, cur, "a-good") == b"1"  # rolled back: still under the current key
        assert {i.name: i.key_id for i in list_secrets(s)}["a-good"] == cur.key_id


def test_rotate_with_given_key_file_and_rerun_after_crash(engine: Engine, tmp_path: Path) -> None:
    st = _settings(tmp_path)
    init_key_file(st)
    old = SecretBox.from_settings(st)
    with session_scope(engine) as s:
        store_secret(s, old, "a", "pfx-password", b"x")
    newfile = tmp_path / "new.key"
    newfile.write_bytes(Fernet.generate_key())
    newfile.chmod(0o600)
    new = SecretBox(read_key_file(newfile))
    # simulate a crash after the database commit and before the key file was replaced
    from orchestrator.secrets import reencrypt_all

    with session_scope(engine) as s:
        assert reencrypt_all(s, old, new) == 1
    res = rotate_key(engine, st, new_key_file=newfile)
    assert res.reencrypted == 0  # already under the new key: nothing left to do
    assert SecretBox.from_settings(st).key_id == new.key_id
    assert newfile.exists()  # the operator's file is left alone
    with pytest.raises(SecretError, match="the new key is the current key"):
        rotate_key(engine, st, new_key_file=newfile)


def test_rotate_with_env_key_needs_a_new_key_file(engine: Engine, tmp_path: Path) -> None:
    st = _settings(tmp_path, secret_key=Fernet.generate_key().decode())
    with pytest.raises(SecretError, match="comes from ORCHESTRATE_SECRET_KEY: give the new key with"):
        rotate_key(engine, st)


def test_storing_under_a_second_key_is_refused(engine: Engine, box: SecretBox) -> None:
    other = SecretBox(Fernet.generate_key())
    with session_scope(engine) as s:
        store_secret(s, box, "first", "ssh-password", b"1")
    with session_scope(engine) as s, pytest.raises(SecretKeyMismatch) as ei:
        store_secret(s, other, "second", "ssh-password", b"2")
    assert (
        f"'first' and maybe others are encrypted under key {box.key_id}, but the key supplied is "
        f"{other.key_id}"
        in str(ei.value)
    )
    with session_scope(engine) as s:
        store_secret(s, other, "first", "ssh-password", b"3")  # replacing the only secret is fine
        assert load_secret(s, other, "first") == b"3"


def test_a_secret_named_like_another_ones_id_is_found_by_id_first(engine: Engine, box: SecretBox) -> None:
    """find_secret matches id or name in one query; when a name is another secret's id, the id wins."""
    with session_scope(engine) as s:
        first = store_secret(s, box, "first", "sudo-password", b"one")
        store_secret(s, box, first.id, "sudo-password", b"named like first's id")
        first_id = first.id
    with session_scope(engine) as s:
        assert load_secret(s, box, first_id) == b"one"
        assert load_secret(s, box, "first") == b"one"
        with pytest.raises(SecretNotFound):
            load_secret(s, box, "nobody")
