"""`orchestrate secrets` end to end through the CLI, on SQLite and PostgreSQL, and the canary: a planted
password found nowhere (output, DEBUG log file, SQLite file bytes, PostgreSQL rows)."""

from __future__ import annotations

import base64
import json
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

import orchestrator.cli
from orchestrator.config import reset_logging
from orchestrator.secrets import SecretBox, load_secret
from orchestrator.state.db import session_scope
from orchestrator.state.models import AuditEvent

orchestrator.cli._register()
runner = CliRunner()


@pytest.fixture
def cli_env(
    orchestrate_env: Path, db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """The CLI on the test's database (`engine` inspects the same one); yields the data directory."""
    monkeypatch.setenv("ORCHESTRATE_DATABASE_URL", db_url)
    yield orchestrate_env
    reset_logging()


def run(*args: str, input: str | None = None, code: int = 0) -> tuple[str, str]:
    """Invoke `orchestrate ARGS`; checks the exit code; returns (stdout, stderr)."""
    res = runner.invoke(orchestrator.cli.app, list(args), input=input)
    assert res.exit_code == code, (
        f"exit {res.exit_code}\nstdout: {res.stdout}\nstderr: {res.stderr}\n{res.exception!r}"
    )
    return res.stdout, res.stderr


def test_init_set_list_remove(
    cli_env: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out, _ = run("secrets", "init")
    key_file = cli_env / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    kid = SecretBox(key_file.read_bytes()).key_id
    assert f"key id {kid}" in out

    monkeypatch.setenv("MF_PW", "from-env-pw")
    out, _ = run("secrets", "set", "lab-sudo", "--kind", "sudo-password", "--from-env", "MF_PW")
    assert "stored sudo-password 'lab-sudo'" in out
    pwfile = tmp_path / "pw.txt"
    pwfile.write_text("from-file-pw\n")
    run("secrets", "set", "lab-ssh", "--kind", "ssh-password", "--from-file", str(pwfile))
    run("secrets", "set", "mac1-pfx-pw", "--kind", "pfx-password", "--prompt", input="typed-pw\ntyped-pw\n")

    box = SecretBox(key_file.read_bytes())
    with session_scope(engine) as s:
        assert load_secret(s, box, "lab-sudo") == b"from-env-pw"
        assert load_secret(s, box, "lab-ssh") == b"from-file-pw"  # the trailing newline is dropped
        assert load_secret(s, box, "mac1-pfx-pw") == b"typed-pw"

    out, _ = run("secrets", "list", "--json")
    rows = json.loads(out)
    assert [(r["name"], r["kind"], r["key_id"], r["current_key"]) for r in rows] == [
        ("lab-ssh", "ssh-password", kid, True),
        ("lab-sudo", "sudo-password", kid, True),
        ("mac1-pfx-pw", "pfx-password", kid, True),
    ]
    assert set(rows[0]) == {"id", "name", "kind", "key_id", "current_key", "created_at", "rotated_at"}
    out, _ = run("secrets", "list")
    assert "lab-sudo" in out and "3 secret(s), current key " + kid in out
    assert "from-env-pw" not in out

    out, _ = run("secrets", "remove", "lab-ssh")
    assert "removed ssh-password 'lab-ssh'" in out
    _, err = run("secrets", "remove", "lab-ssh", code=1)
    assert "no secret named 'lab-ssh'" in err

    with session_scope(engine) as s:
        actions = [e.action for e in s.exec(select(AuditEvent).order_by(AuditEvent.at)).scalars()]  # type: ignore[call-overload]
    assert actions[:5] == ["secrets.init", "secrets.set", "secrets.set", "secrets.set", "secrets.remove"]


def test_bad_input_messages(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, err = run("secrets", "set", "x", "--kind", "sudo-password", "--from-env", "MF_NONE", code=2)
    assert "environment variable MF_NONE is not set" in err
    _, err = run("secrets", "set", "x", "--kind", "sudo-password", code=2)
    assert "give exactly one of --from-file FILE, --from-env VAR, --prompt" in err
    monkeypatch.setenv("MF_PW", "v")
    _, err = run("secrets", "set", "x", "--kind", "sudo-password", "--from-env", "MF_PW", code=2)
    assert "no secret key: the key file" in err and "orchestrate secrets init" in err
    run("secrets", "init")
    _, err = run("secrets", "set", "x", "--kind", "api-token", "--from-env", "MF_PW", code=2)
    assert "Invalid value for '--kind'" in err
    monkeypatch.setenv("MF_EMPTY", "")
    _, err = run("secrets", "set", "x", "--kind", "sudo-password", "--from-env", "MF_EMPTY", code=2)
    assert "the value is empty; nothing stored" in err
    _, err = run("secrets", "set", "bad name", "--kind", "sudo-password", "--from-env", "MF_PW", code=2)
    assert "invalid secret name 'bad name'" in err
    _, err = run("secrets", "set", "x", "--kind", "sudo-password", "--from-file", "/nonexistent/pw", code=2)
    assert "/nonexistent/pw: no such file (secret file)" in err


def test_init_refuses_to_overwrite_and_force_keeps_old(cli_env: Path) -> None:
    run("secrets", "init")
    key_file = cli_env / "secret.key"
    first = key_file.read_bytes()
    _, err = run("secrets", "init", code=1)
    assert "already exists" in err and "refusing to overwrite" in err
    assert key_file.read_bytes() == first
    _, err = run("secrets", "init", "--force")
    assert "warning:" in err and "replaced key" in err and "0 stored secret(s)" in err
    assert (cli_env / "secret.key.old").read_bytes() == first
    assert key_file.read_bytes() != first


def test_rotate_and_wrong_key(
    cli_env: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run("secrets", "init")
    monkeypatch.setenv("MF_PW", "rotate-me")
    run("secrets", "set", "a", "--kind", "ssh-password", "--from-env", "MF_PW")
    old = SecretBox((cli_env / "secret.key").read_bytes())
    out, _ = run("secrets", "rotate")
    new = SecretBox((cli_env / "secret.key").read_bytes())
    assert f"re-encrypted 1 secret(s) from key {old.key_id} to {new.key_id}" in out
    assert SecretBox((cli_env / "secret.key.old").read_bytes()).key_id == old.key_id
    with session_scope(engine) as s:
        assert load_secret(s, new, "a") == b"rotate-me"

    # another key supplied through the environment: clear errors naming both key ids, no traceback
    stranger = Fernet.generate_key().decode()
    monkeypatch.setenv("ORCHESTRATE_SECRET_KEY", stranger)
    sk = SecretBox(stranger.encode()).key_id
    orchestrate_caches_clear()
    _, err = run("secrets", "set", "b", "--kind", "ssh-password", "--from-env", "MF_PW", code=2)
    assert f"encrypted under key {new.key_id}, but the key supplied is {sk}" in err
    assert "Traceback" not in err
    newkey = tmp_path / "next.key"
    newkey.write_bytes(Fernet.generate_key())
    newkey.chmod(0o600)
    _, err = run("secrets", "rotate", "--new-key-file", str(newkey), code=2)
    assert f"secret 'a' is encrypted under key {new.key_id}, but the key supplied is {sk}" in err
    out, _ = run("secrets", "list", "--json")
    assert json.loads(out)[0]["current_key"] is False


def orchestrate_caches_clear() -> None:
    from orchestrator.cli import context

    context.settings.cache_clear()


def _forms(canary: bytes) -> list[bytes]:
    return [canary, base64.b64encode(canary), base64.urlsafe_b64encode(canary), canary.hex().encode()]


def test_canary_password_is_found_nowhere(
    cli_env: Path, engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    canary = f"CANARY-{uuid.uuid4().hex}-pw"
    log_file = tmp_path / "verbose.log"
    monkeypatch.setenv("MF_CANARY", canary)
    pwfile = tmp_path / "canary.txt"
    pwfile.write_text(canary + "\n")
    v = ("secrets", "-v", "--log-file", str(log_file))
    outputs: list[str] = []

    def go(*args: str, code: int = 0, input: str | None = None) -> None:
        outputs.extend(run(*v, *args, code=code, input=input))

    go("list")  # before any key
    go("set", "canary-pw", "--kind", "pfx-password", "--from-env", "MF_CANARY", code=2)  # missing key
    go("init")
    go("set", "canary-pw", "--kind", "pfx-password", "--from-env", "MF_CANARY")
    go("set", "canary-ssh", "--kind", "ssh-password", "--from-file", str(pwfile))
    go("set", "canary-sudo", "--kind", "sudo-password", "--prompt", input=f"{canary}\n{canary}\n")
    go(
        "set",
        "canary-bad",
        "--kind",
        "sudo-password",
        "--prompt",
        input=f"{canary}\nmismatch\n{canary}\n{canary}\n",
    )
    go("set", "bad name", "--kind", "sudo-password", "--from-env", "MF_CANARY", code=2)
    go("list")
    go("list", "--json")
    go("rotate")
    go("remove", "canary-ssh")
    go("remove", "canary-ssh", code=1)
    # the wrong key (from the environment), then a missing key file
    monkeypatch.setenv("ORCHESTRATE_SECRET_KEY", Fernet.generate_key().decode())
    orchestrate_caches_clear()
    go("set", "canary-pw", "--kind", "pfx-password", "--from-env", "MF_CANARY", code=2)
    next_key = tmp_path / "next.key"
    next_key.write_bytes(Fernet.generate_key())
    next_key.chmod(0o600)
    go("rotate", "--new-key-file", str(next_key), code=2)
    monkeypatch.delenv("ORCHESTRATE_SECRET_KEY")
    monkeypatch.setenv("ORCHESTRATE_SECRET_KEY_FILE", str(cli_env / "missing.key"))
    orchestrate_caches_clear()
    go("rotate", code=2)
    go("set", "canary-pw", "--kind", "pfx-password", "--from-env", "MF_CANARY", code=2)
    outputs.extend(run("db", "-v", "current"))
    outputs.extend(run("db", "-v", "upgrade"))
    reset_logging()

    # the canary did go through: it is stored and readable with the key
    box = SecretBox((cli_env / "secret.key").read_bytes())
    with session_scope(engine) as s:
        assert load_secret(s, box, "canary-pw") == canary.encode()
        assert load_secret(s, box, "canary-sudo") == canary.encode()
        assert load_secret(s, box, "canary-bad") == canary.encode()

    log = log_file.read_bytes()
    assert b"DEBUG" in log and b"stored secret canary-pw" in log  # the log is verbose: the check can bite
    places: dict[str, bytes] = {f"output {i}": o.encode() for i, o in enumerate(outputs)}
    places["log file"] = log
    if db_url.startswith("sqlite"):
        db_file = Path(db_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            f = Path(str(db_file) + suffix)
            if f.exists():
                places[f.name] = f.read_bytes()
        assert places[db_file.name]  # the database file was read
    else:
        places.update(_postgres_rows(engine))
        assert any(k.startswith("secret.") for k in places)
    for where, data in places.items():
        for form in _forms(canary.encode()):
            assert form not in data, f"canary found in {where}"


def _postgres_rows(engine: Engine) -> dict[str, bytes]:
    """Every text and bytea value of every row of every table, as bytes, keyed by table.column."""
    found: dict[str, bytes] = {}
    insp = inspect(engine)
    with engine.connect() as conn:
        for table in insp.get_table_names():
            for column in insp.get_columns(table):
                type_name = str(column["type"]).upper()
                if not any(t in type_name for t in ("CHAR", "TEXT", "BYTEA", "JSON")):
                    continue
                values = conn.execute(text(f'SELECT "{column["name"]}" FROM "{table}"')).scalars().all()
                blob = b"\n".join(
                    v if isinstance(v, bytes) else str(v).encode() for v in values if v is not None
                )
                found[f"{table}.{column['name']}"] = blob
    return found
