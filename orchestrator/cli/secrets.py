"""`orchestrate secrets`: the encryption key (init, rotate) and stored secrets (set, list, remove).

No command prints a secret value or the key; keys are shown by id. A value read by `set` is registered with
the log redactor before anything can log it.

Exit codes: 2 for bad input (no key, malformed key, a key that is not the one the secrets are under, a
rotation that cannot be done as asked, unreadable file, unset variable, empty value, bad configuration), 1
when refused (key file exists, secret unknown or in use).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from inventory.userfiles import SECRET, read_user_file
from orchestrator import audit
from orchestrator import secrets as store
from orchestrator.cli import context
from orchestrator.cli.exits import EXIT_BAD_INPUT, EXIT_FAILED
from orchestrator.cli.options import JsonOpt
from orchestrator.config import ConfigError, configure_logging
from orchestrator.console import Console
from orchestrator.redact import LOG_REDACTOR
from orchestrator.state.db import session_scope

log = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True, help="Encrypted secrets (passwords, PFX files) and their key.")


class Kind(StrEnum):
    SSH_PASSWORD = "ssh-password"  # noqa: S105  (a kind name, not a password)
    SUDO_PASSWORD = "sudo-password"  # noqa: S105
    PFX_PASSWORD = "pfx-password"  # noqa: S105


@app.callback()
def _options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level.")] = False,
    log_file: Annotated[
        Path | None, typer.Option("--log-file", help="Also write the log to this file.", show_default=False)
    ] = None,
) -> None:
    """Encrypted secrets (passwords, PFX files) and their key."""
    with _errors(Console()):
        configure_logging(context.settings(), verbose=verbose, log_file=log_file)


@contextmanager
def _errors(
    console: Console, action: str | None = None, params: dict[str, Any] | None = None
) -> Iterator[None]:
    """Typed errors → their message (they never hold a value or a key) and an exit code; the failure is
    audited when action is given."""
    try:
        yield
    except (
        store.SecretKeyMissing,
        store.SecretKeyInvalid,
        store.SecretCorrupt,
        store.SecretKeyMismatch,  # the key supplied is not the one the secrets are under
        store.RotationInputError,
        ConfigError,
        OSError,
        ValueError,
    ) as e:
        _fail(console, action, params, e)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except store.SecretError as e:
        _fail(console, action, params, e)
        raise typer.Exit(EXIT_FAILED) from None


def _fail(console: Console, action: str | None, params: dict[str, Any] | None, e: Exception) -> None:
    console.error(str(e))
    log.info("%s failed: %s: %s", action or "secrets", type(e).__name__, e)
    if action is None or isinstance(e, ConfigError):
        return
    try:
        with session_scope(context.engine()) as s:
            audit.record(
                s, context.settings().actor, action, {**(params or {}), "error": type(e).__name__}, "error"
            )
    except Exception as audit_error:  # the original error is what the operator must see
        console.warning(f"could not write the audit log: {type(audit_error).__name__}")


def _audit(action: str, params: dict[str, Any]) -> None:
    with session_scope(context.engine()) as s:
        audit.record(s, context.settings().actor, action, params)


@app.command("init")
def init(
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing key (kept as secret.key.old).")
    ] = False,
) -> None:
    """Create the secret key file (0600) that encrypts stored secrets. Refuses to overwrite one."""
    console = Console()
    params: dict[str, Any] = {"force": force}
    with _errors(console, "secrets.init", params):
        result = store.init_key_file(context.settings(), force=force)
        params |= {
            "key_file": str(result.path),
            "key_id": result.key_id,
            "replaced_key_id": result.replaced_key_id,
        }
        stranded = 0
        if result.replaced_key_id is not None:
            with session_scope(context.engine()) as s:
                stranded = sum(1 for i in store.list_secrets(s) if i.key_id == result.replaced_key_id)
        _audit("secrets.init", params)
    if result.replaced_key_id is not None:
        console.warning(
            f"replaced key {result.replaced_key_id} (kept as {result.path}.old); {stranded} stored secret(s) "
            "are encrypted under it and cannot be read with the new key — `orchestrate secrets rotate` "
            "re-encrypts instead of replacing"
        )
    console.success(f"created {result.path} (mode 0600, key id {result.key_id}); back it up somewhere safe")


@app.command("set")
def set_(
    name: Annotated[str, typer.Argument(help="The secret's name (referenced by inventory and commands).")],
    kind: Annotated[Kind, typer.Option("--kind", help="What the secret is.")],
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file",
            help="Read the value from this file (one trailing newline dropped).",
            show_default=False,
        ),
    ] = None,
    from_env: Annotated[
        str | None,
        typer.Option("--from-env", help="Read the value from this environment variable.", show_default=False),
    ] = None,
    prompt: Annotated[
        bool, typer.Option("--prompt", help="Ask for the value (not echoed, asked twice).")
    ] = False,
) -> None:
    """Store a secret, encrypted (replaces the value of an existing secret of that name)."""
    console = Console()
    params: dict[str, Any] = {"name": name, "kind": kind.value}
    with _errors(console, "secrets.set", params):
        value = _read_value(from_file, from_env, prompt)
        LOG_REDACTOR.add(value)
        box = store.SecretBox.from_settings(context.settings())
        with session_scope(context.engine()) as s:
            secret = store.store_secret(s, box, name, kind.value, value)
            params |= {"secret_id": secret.id, "key_id": box.key_id}
            audit.record(s, context.settings().actor, "secrets.set", params)
    console.success(f"stored {kind.value} {name!r} (id {secret.id}, key {box.key_id})")


def _read_value(from_file: Path | None, from_env: str | None, prompt: bool) -> bytes:
    """The value from exactly one source. Raises ValueError (bad usage, unset variable, empty value)."""
    if sum((from_file is not None, from_env is not None, prompt)) != 1:
        raise ValueError("give exactly one of --from-file FILE, --from-env VAR, --prompt")
    if from_file is not None:
        data = read_user_file(from_file, SECRET)
        # `echo pw > file` leaves a newline that is not part of the password
        data = data[:-2] if data.endswith(b"\r\n") else data[:-1] if data.endswith(b"\n") else data
    elif from_env is not None:
        if from_env not in os.environ:
            raise ValueError(f"environment variable {from_env} is not set")
        data = os.environb[from_env.encode()] if os.supports_bytes_environ else os.environ[from_env].encode()
    else:
        data = typer.prompt("Value", hide_input=True, confirmation_prompt=True).encode()
    if not data:
        raise ValueError("the value is empty; nothing stored")
    return data


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """List stored secrets: names, kinds, key ids and dates — never values."""
    console = Console(json_mode=json_out)
    with _errors(console):
        current: str | None
        try:
            current = store.SecretBox.from_settings(context.settings()).key_id
        except store.SecretError:
            current = None  # listing needs no key; the `current key` column then says unknown
        with session_scope(context.engine()) as s:
            infos = store.list_secrets(s)
    rows: list[dict[str, Any]] = [
        {
            "id": i.id,
            "name": i.name,
            "kind": i.kind,
            "key_id": i.key_id,
            "current_key": None if current is None else i.key_id == current,
            "created_at": i.created_at.isoformat(),
            "rotated_at": i.rotated_at.isoformat() if i.rotated_at else None,
        }
        for i in infos
    ]
    if json_out:
        console.json(rows)
        return
    mark = {True: "yes", False: "NO", None: "?"}
    console.table(
        f"{len(rows)} secret(s)" + (f", current key {current}" if current else ", no key available"),
        ["Name", "Kind", "Key id", "Current key", "Created", "Rotated"],
        [
            [
                r["name"],
                r["kind"],
                r["key_id"],
                mark[r["current_key"]],
                r["created_at"][:19],
                (r["rotated_at"] or "")[:19],
            ]
            for r in rows
        ],
    )


@app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="The secret's name or id.")]) -> None:
    """Delete a stored secret (refused while a client certificate uses it)."""
    console = Console()
    params: dict[str, Any] = {"name": name}
    with _errors(console, "secrets.remove", params):
        with session_scope(context.engine()) as s:
            gone = store.delete_secret(s, name)
            audit.record(s, context.settings().actor, "secrets.remove", {**params, "secret_id": gone.id})
    console.success(f"removed {gone.kind} {gone.name!r}")


@app.command("rotate")
def rotate(
    new_key_file: Annotated[
        Path | None,
        typer.Option(
            "--new-key-file", help="Use the key in this file (default: a new random key).", show_default=False
        ),
    ] = None,
) -> None:
    """Re-encrypt every secret under a new key in one transaction, then replace the key file (the previous
    key is kept as secret.key.old, 0600)."""
    console = Console()
    params: dict[str, Any] = {"new_key_file": str(new_key_file) if new_key_file else None}
    with _errors(console, "secrets.rotate", params):
        res = store.rotate_key(context.engine(), context.settings(), new_key_file)
        _audit("secrets.rotate", {**params, "old_key_id": res.old_key_id, "new_key_id": res.new_key_id,
                                  "reencrypted": res.reencrypted})  # fmt: skip
    console.success(f"re-encrypted {res.reencrypted} secret(s) from key {res.old_key_id} to {res.new_key_id}")
    if res.key_file is not None:
        console.info(f"new key in {res.key_file}; previous key kept in {res.old_key_file}")
    else:
        console.warning(
            f"set ORCHESTRATE_SECRET_KEY to the key in {new_key_file} now: stored secrets need it (key id "
            f"{res.new_key_id})"
        )
