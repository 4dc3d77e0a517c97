"""Issue 3's promise: a canary password planted in a PFX, a stored secret and the environment goes through
every controller command of that issue in verbose mode, failing paths included, and is found nowhere —
stdout/stderr, the log file, the SQLite file bytes (with its WAL) or any PostgreSQL row."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

import orchestrator.cli
from macsim.artifacts.certs import write_cert_artifacts
from macsim.artifacts.dmg import write_corrupt_dmg, write_dmg
from orchestrator.config import reset_logging
from tests.orchestrator.test_secrets_cli import _forms, _postgres_rows

orchestrator.cli._register()
runner = CliRunner()


def test_canary_is_found_nowhere_across_all_commands(
    orchestrate_env: Path, db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ORCHESTRATE_DATABASE_URL", db_url)
    canary = f"Canary{uuid.uuid4().hex}"  # quote-free, as a real PFX password may be
    hosts = {"mac-01": "mac-01.local", "mac-02": "mac-02.local"}
    art = write_cert_artifacts(tmp_path / "art", hosts)
    # re-protect mac-01's PFX with the canary so `certs add` must use it
    from cryptography.hazmat.primitives.serialization import pkcs12

    from orchestrator.certs.pfx import rewrap_for_macos

    src = art.host_pfx["mac-01"]
    loaded = pkcs12.load_pkcs12(src.read_bytes(), art.password_for(src).encode())
    assert loaded.key is not None and loaded.cert is not None
    canary_pfx = tmp_path / "mac-01.pfx"
    canary_pfx.write_bytes(
        rewrap_for_macos(loaded.key, loaded.cert.certificate, [c.certificate for c in loaded.additional_certs],
                         canary.encode())
    )
    pwfile = tmp_path / "pw"
    pwfile.write_text(canary + "\n")
    monkeypatch.setenv("CANARY_PW", canary)
    inv = tmp_path / "inv.yaml"
    inv.write_text(yaml.safe_dump({
        "groups": [{"name": "lab"}],
        "hosts": [{"name": n, "address": "127.0.0.1", "port": 2200 + i, "user": "admin",
                   "expected_hostname": h, "groups": ["lab"]} for i, (n, h) in enumerate(hosts.items())],
    }))
    dmg = write_dmg(tmp_path, "8.0.2.5")
    bad_dmg = write_corrupt_dmg(tmp_path, "8.0.2.6")
    log_file = tmp_path / "verbose.log"
    outputs: list[str] = []

    def go(*args: str, code: int | None = 0, input: str | None = None) -> None:
        r = runner.invoke(orchestrator.cli.app, ["-v", "--log-file", str(log_file), *args], input=input)
        assert r.exception is None or isinstance(r.exception, SystemExit), (args, r.exception)
        if code is not None:
            assert r.exit_code == code, (args, r.exit_code, r.stdout, r.stderr)
        outputs.extend([r.stdout, r.stderr])

    go("certs", "add", str(canary_pfx), "--password-env", "CANARY_PW", code=None)  # before any key/inventory
    go("secrets", "init")
    go("db", "upgrade")
    go("db", "current")
    go("inventory", "import", str(inv))
    go("inventory", "list", "--json")
    go("inventory", "show", "mac-01")
    go("certs", "ca", "add", str(art.lab_ca.pem), str(art.switch_ca.pem))
    go("certs", "add", str(canary_pfx), "--password-file", str(pwfile))
    go("certs", "add", str(canary_pfx), "--password-env", "CANARY_PW", "--json")
    go("certs", "add", str(canary_pfx), "--prompt", input=f"{canary}\n")
    go("certs", "add", str(art.host_pfx["mac-02"]), "--password-env", "CANARY_PW", code=None)  # wrong password
    go("certs", "list", "--json")
    go("certs", "check", "--json", code=None)  # mac-02 has no certificate
    go("certs", "check", code=None)
    go("certs", "profile", "--out", str(tmp_path / "ca.mobileconfig"))
    go("secrets", "set", "sudo-lab", "--kind", "sudo-password", "--from-env", "CANARY_PW")
    go("secrets", "list", "--json")
    go("secrets", "rotate")
    go("artifact", "add", str(dmg))
    go("artifact", "add", str(bad_dmg), code=2)
    go("artifact", "list", "--json")
    go("artifact", "remove", "8.0.2.5", "--yes")
    go("inventory", "remove", "mac-02", "--yes")
    reset_logging()

    log = log_file.read_bytes()
    assert b"DEBUG" in log  # verbose logging did run, so the check below can bite
    assert any("password does not open" in o for o in outputs)  # the failing path ran
    places: dict[str, bytes] = {f"output {i}": o.encode() for i, o in enumerate(outputs)}
    places["log file"] = log
    places["profile"] = (tmp_path / "ca.mobileconfig").read_bytes()
    if db_url.startswith("sqlite"):
        db_file = Path(db_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            f = Path(str(db_file) + suffix)
            if f.exists():
                places[f.name] = f.read_bytes()
    else:
        places.update(_postgres_rows(engine))
        assert any(k.startswith("clientcertificate.") for k in places)
    for where, data in places.items():
        for form in _forms(canary.encode()):
            assert form not in data, f"canary found in {where}"
