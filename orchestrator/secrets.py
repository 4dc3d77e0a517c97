"""Secrets stored encrypted (Fernet) under a key the operator supplies.

The key comes from `ORCHESTRATE_SECRET_KEY` or from the key file (default `<data_dir>/secret.key`, 0600,
created by `orchestrate secrets init`). A key is known by its id, the first 16 hex digits of the SHA-256 of
its 32 raw bytes: ids go into rows, messages and logs, the key never does. Neither do secret values: every
error here names secrets by name or id and keys by id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import BindParameter, bindparam, or_, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from inventory.userfiles import SECRET_KEY, UserFileError, read_user_file
from orchestrator.config import Settings
from orchestrator.state.db import session_scope, write_lock
from orchestrator.state.models import ClientCertificate, Secret, utcnow

log = logging.getLogger(__name__)

SECRET_KINDS = ("pfx", "pfx-password", "identity", "ssh-password", "sudo-password")
KEY_ENV = "ORCHESTRATE_SECRET_KEY"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,199}$")


class SecretError(Exception):
    """Base of the errors below; the message is safe to show (no value, no key)."""


class SecretKeyMissing(SecretError):
    """No key in the environment and no key file."""


class SecretKeyInvalid(SecretError):
    """The key (file) is not a usable Fernet key, or the key file is readable by others."""


class SecretKeyMismatch(SecretError):
    """A secret was encrypted under another key than the one supplied."""

    def __init__(self, message: str, stored_key_id: str, current_key_id: str) -> None:
        super().__init__(message)
        self.stored_key_id = stored_key_id
        self.current_key_id = current_key_id


class SecretCorrupt(SecretError):
    """A secret's ciphertext does not decrypt under the key recorded for it."""


class SecretNotFound(SecretError, LookupError):
    """No secret with that name or id."""


class SecretInUse(SecretError):
    """The secret is still referenced (e.g. by a client certificate) and cannot be removed."""


class RotationInputError(SecretError):
    """`secrets rotate` asked for what it cannot do (no new key file while the key comes from the environment,
    or the new key is the current one): bad input, nothing changed."""


class SecretKeyFileExists(SecretError):
    """`secrets init` would overwrite an existing key file."""


def key_id_of(key: bytes) -> str:
    """The key's public id: first 16 hex digits of SHA-256 over its 32 raw bytes.

    Raises SecretKeyInvalid when key is not a url-safe base64 Fernet key."""
    return hashlib.sha256(_raw_key(key)).hexdigest()[:16]


def _raw_key(key: bytes) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(key.strip())
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        # the message says what a key looks like, never what was given
        raise SecretKeyInvalid("not a Fernet key: expected 32 bytes in url-safe base64 (44 characters)")
    return raw


class SecretBox:
    """Encrypts and decrypts with one Fernet key. Its repr and messages carry only the key id."""

    def __init__(self, key: bytes) -> None:
        """Raises SecretKeyInvalid when key is not a Fernet key."""
        self.key_id = key_id_of(key)
        self._fernet = Fernet(key.strip())

    def __repr__(self) -> str:
        return f"SecretBox(key_id={self.key_id})"

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The box for the configured key: `ORCHESTRATE_SECRET_KEY` if set, else the key file.

        Raises SecretKeyMissing (with what to do) when there is neither, SecretKeyInvalid when the key is
        malformed or the key file is readable by group or others."""
        if settings.secret_key:
            try:
                return cls(settings.secret_key.encode("ascii"))
            except (SecretKeyInvalid, UnicodeEncodeError):
                raise SecretKeyInvalid(
                    f"{KEY_ENV} is not a Fernet key: expected 32 bytes in url-safe base64 (44 characters)"
                ) from None
        path = settings.effective_secret_key_file
        return cls(read_key_file(path))

    def encrypt(self, value: bytes) -> bytes:
        return self._fernet.encrypt(value)

    def decrypt(self, token: bytes, *, stored_key_id: str, what: str) -> bytes:
        """The plaintext of token. what names the secret in errors.

        Raises SecretKeyMismatch when stored_key_id is not this box's key, SecretCorrupt when it is but the
        token does not decrypt."""
        if stored_key_id != self.key_id:
            raise SecretKeyMismatch(
                f"{what} is encrypted under key {stored_key_id}, but the key supplied is {self.key_id}: "
                f"supply the key {stored_key_id} (ORCHESTRATE_SECRET_KEY or the key file; after a rotation "
                "the previous key is kept as secret.key.old)",
                stored_key_id,
                self.key_id,
            )
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise SecretCorrupt(
                f"{what} does not decrypt under key {self.key_id}, the key it is recorded under: "
                "the stored ciphertext is damaged; set the secret again"
            ) from None


# --- key files -------------------------------------------------------------------------------------------


def read_key_file(path: Path) -> bytes:
    """The key stored in path. Raises SecretKeyMissing when absent, SecretKeyInvalid when it is not a
    Fernet key or group/other can read it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SecretKeyMissing(
            f"no secret key: the key file {path} does not exist and {KEY_ENV} is not set; "
            "create a key with `orchestrate secrets init` (or set ORCHESTRATE_SECRET_KEY_FILE / "
            f"{KEY_ENV})"
        ) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretKeyInvalid(
            f"the key file {path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run: chmod 600 {path}"
        )
    try:
        key = read_user_file(path, SECRET_KEY).strip()
    except UserFileError as e:
        raise SecretKeyInvalid(str(e)) from None
    try:
        key_id_of(key)
    except SecretKeyInvalid:
        raise SecretKeyInvalid(
            f"the key file {path} does not hold a Fernet key (32 bytes in url-safe base64)"
        ) from None
    return key


def write_key_file(path: Path, key: bytes) -> None:
    """Write key to path atomically with mode 0600 (the directory is created 0700 if missing), replacing
    any file there."""
    key_id_of(key)
    write_private(path, key.strip() + b"\n")


def write_private(path: Path, data: bytes) -> None:
    """Atomically replace path with data, created 0600 (never readable by others, even for a moment)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # a leftover of a crashed run of this same pid
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class KeyInitResult:
    path: Path
    key_id: str
    replaced_key_id: str | None  # the key moved to `<path>.old` by --force, if any


def init_key_file(settings: Settings, *, force: bool = False) -> KeyInitResult:
    """Create a new random key in the configured key file (0600).

    Refuses (SecretKeyFileExists) when the file exists, unless force: then the old key is kept as
    `<file>.old` (0600) — secrets stored under it stay readable only with that old key."""
    path = settings.effective_secret_key_file
    replaced: str | None = None
    if path.exists():
        if not force:
            raise SecretKeyFileExists(
                f"the key file {path} already exists (key {_describe_key_file(path)}); refusing to overwrite "
                "it: secrets stored under it would become unreadable. Use --force to replace it (the old key "
                "is kept as secret.key.old), or `orchestrate secrets rotate` to re-encrypt under a new key"
            )
        replaced = _describe_key_file(path)
        write_private(_old_path(path), path.read_bytes())
    key = Fernet.generate_key()
    write_key_file(path, key)
    result = KeyInitResult(path=path, key_id=key_id_of(key), replaced_key_id=replaced)
    log.info("secret key created in %s (key id %s)", path, result.key_id)
    return result


def _describe_key_file(path: Path) -> str:
    try:
        return key_id_of(path.read_bytes())
    except (OSError, SecretKeyInvalid):
        return "unreadable"


def _old_path(path: Path) -> Path:
    return path.with_name(path.name + ".old")


# --- stored secrets --------------------------------------------------------------------------------------


def _check(name: str, kind: str) -> None:
    if kind not in SECRET_KINDS:
        raise ValueError(f"unknown secret kind {kind!r}: expected one of {', '.join(SECRET_KINDS)}")
    if not _NAME_RE.match(name):
        raise ValueError(
            f"invalid secret name {name!r}: 1-200 characters, letters, digits and . _ : @ / + - "
            "(starting with a letter or digit)"
        )


def find_secret(session: Session, ref: str) -> Secret:
    """The secret whose id or name is ref. Raises SecretNotFound."""
    rows = session.exec(_find_secret_query(), params={"b_ref": ref}).all()
    found = next((r for r in rows if r.id == ref), None) or next(iter(rows), None)  # one query; id first
    if found is None:
        raise SecretNotFound(f"no secret named {ref!r} (nor with that id)")
    return found


@cache
def _find_secret_query() -> SelectOfScalar[Secret]:
    """Built once: building a statement costs more CPU than running it (several per device job)."""
    ref: BindParameter[str] = bindparam("b_ref")
    return select(Secret).where(or_(col(Secret.id) == ref, col(Secret.name) == ref))


def store_secret(session: Session, box: SecretBox, name: str, kind: str, value: bytes) -> Secret:
    """Encrypt value and store it under name (replacing the value and kind of an existing secret of that
    name, keeping its id). Added to the session; the caller commits. Raises ValueError for an unknown kind
    or an invalid name, TypeError when value is not bytes, SecretKeyMismatch when other secrets are stored
    under another key (all secrets share one key)."""
    _check(name, kind)
    if not isinstance(value, bytes):
        raise TypeError("a secret value must be bytes")
    others = session.exec(
        select(Secret.key_id, Secret.name).where(Secret.name != name, Secret.key_id != box.key_id)
    ).first()
    if others is not None:
        # mixing keys would leave secrets no single key can read
        raise SecretKeyMismatch(
            f"secret {others[1]!r} and maybe others are encrypted under key {others[0]}, but the key "
            f"supplied is {box.key_id}: supply key {others[0]}, or rotate to the new key first",
            others[0],
            box.key_id,
        )
    token = box.encrypt(value)
    existing = session.exec(select(Secret).where(Secret.name == name)).first()
    if existing is None:
        secret = Secret(name=name, kind=kind, ciphertext=token, key_id=box.key_id)
    else:
        secret = existing
        secret.kind, secret.ciphertext, secret.key_id = kind, token, box.key_id
        secret.rotated_at = None
        secret.created_at = utcnow()
    session.add(secret)
    session.flush()
    log.debug("stored secret %s (id %s, kind %s, key %s)", name, secret.id, kind, box.key_id)
    return secret


def load_secret(session: Session, box: SecretBox, secret_id_or_name: str) -> bytes:
    """The plaintext of a stored secret. Raises SecretNotFound, SecretKeyMismatch (it is under another key,
    both key ids named) or SecretCorrupt."""
    secret = find_secret(session, secret_id_or_name)
    return box.decrypt(secret.ciphertext, stored_key_id=secret.key_id, what=f"secret {secret.name!r}")


def delete_secret(session: Session, secret_id_or_name: str) -> Secret:
    """Delete a secret. Raises SecretNotFound, or SecretInUse when a client certificate refers to it."""
    secret = find_secret(session, secret_id_or_name)
    users = session.exec(
        select(ClientCertificate.id).where(
            or_(
                col(ClientCertificate.pfx_secret_id) == secret.id,
                col(ClientCertificate.password_secret_id) == secret.id,
            )
        )
    ).all()
    if users:
        raise SecretInUse(
            f"secret {secret.name!r} is used by {len(users)} client certificate(s) "
            f"({', '.join(sorted(users)[:5])}); remove those certificates first"
        )
    session.delete(secret)
    session.flush()
    log.debug("deleted secret %s (id %s)", secret.name, secret.id)
    return secret


@dataclass(frozen=True)
class SecretInfo:
    """What may be shown about a secret: never its value."""

    id: str
    name: str
    kind: str
    key_id: str
    created_at: datetime
    rotated_at: datetime | None


def list_secrets(session: Session) -> list[SecretInfo]:
    """Every secret's metadata, by name."""
    rows = session.exec(select(Secret).order_by(col(Secret.name))).all()
    return [SecretInfo(s.id, s.name, s.kind, s.key_id, s.created_at, s.rotated_at) for s in rows]


def reencrypt_all(session: Session, old: SecretBox, new: SecretBox) -> int:
    """Re-encrypt every secret from old to new inside the session's transaction (taking the write lock
    first); secrets already under new are left alone, so an interrupted rotation can be run again.
    Returns how many were re-encrypted. Raises SecretKeyMismatch if a secret is under neither key — the
    caller then rolls back and nothing changes."""
    conn = session.connection()
    write_lock(conn)
    if conn.dialect.name == "postgresql":
        # keeps a concurrent `secrets set` from adding a row under the old key while we rotate
        conn.execute(text("LOCK TABLE secret IN SHARE ROW EXCLUSIVE MODE"))
    secrets: Sequence[Secret] = session.exec(select(Secret).order_by(col(Secret.name))).all()
    now = utcnow()
    changed = 0
    for s in secrets:
        if s.key_id == new.key_id:
            continue
        plain = old.decrypt(s.ciphertext, stored_key_id=s.key_id, what=f"secret {s.name!r}")
        s.ciphertext, s.key_id, s.rotated_at = new.encrypt(plain), new.key_id, now
        session.add(s)
        changed += 1
    session.flush()
    return changed


@dataclass(frozen=True)
class RotationResult:
    old_key_id: str
    new_key_id: str
    reencrypted: int
    key_file: Path | None  # the key file now holding the new key (None when the key is from the env)
    old_key_file: Path | None  # where the previous key was kept


def rotate_key(engine: Engine, settings: Settings, new_key_file: Path | None = None) -> RotationResult:
    """Re-encrypt every secret under a new key in one transaction, then install the new key.

    The new key is read from new_key_file, or generated. With a key file configured, the new key is first
    saved beside it as `<file>.new` (so a crash after the commit loses nothing: rerun with
    `--new-key-file <file>.new`), then the old key is kept as `<file>.old` (0600) and the new one replaces
    the key file. With the key in ORCHESTRATE_SECRET_KEY, new_key_file is required and the operator must
    then put its content into the environment. Raises SecretKeyMissing/SecretKeyInvalid/SecretKeyMismatch;
    on any error the database is unchanged."""
    old = SecretBox.from_settings(settings)
    if new_key_file is not None:
        new_key = read_key_file(new_key_file)
    elif settings.secret_key:
        raise RotationInputError(
            f"the current key comes from {KEY_ENV}: give the new key with --new-key-file (create one "
            f"with `orchestrate secrets init` and ORCHESTRATE_SECRET_KEY_FILE), then set {KEY_ENV} to it"
        )
    else:
        new_key = Fernet.generate_key()
    new = SecretBox(new_key)
    if new.key_id == old.key_id:
        raise RotationInputError(f"the new key is the current key ({old.key_id}); nothing to rotate")

    key_file = None if settings.secret_key else settings.effective_secret_key_file
    staged = key_file.with_name(key_file.name + ".new") if key_file is not None else None
    if staged is not None and new_key_file is None:
        write_key_file(staged, new_key)
    with session_scope(engine) as session:
        count = reencrypt_all(session, old, new)
    log.info("re-encrypted %d secret(s) from key %s to key %s", count, old.key_id, new.key_id)
    old_file: Path | None = None
    if key_file is not None:
        old_file = _old_path(key_file)
        write_key_file(old_file, read_key_file(key_file))
        write_key_file(key_file, new_key)
        if staged is not None:
            staged.unlink(missing_ok=True)
    return RotationResult(old.key_id, new.key_id, count, key_file, old_file)
