"""A canary PFX password goes through every `certs` command, failing paths included, and shows up nowhere:
not in stdout/stderr, not in any log record, not in the SQLite files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from orchestrator.certs.issue import create_lab_ca
from tests.orchestrator.certs import certmaterial as m
from tests.orchestrator.certs.test_certs_cli import _setup, run

CANARY = "Zq9CanaryPfxPassword4711"


def test_canary_password_appears_nowhere(
    orchestrate_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "canary.db"
    _setup(orchestrate_env, tmp_path, monkeypatch, f"sqlite:///{db}")
    lab = m.lab()
    (tmp_path / "root.pem").write_bytes(m.pem(lab["root"][0]))
    pwfile = tmp_path / "pw"
    pwfile.write_text(CANARY + "\n")
    monkeypatch.setenv("PFX_PW", CANARY)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": CANARY)
    key, cert = m.make_leaf(m.Leaf(cn="mac-01.local"), lab["inter"])
    good = tmp_path / "good.pfx"
    good.write_bytes(m.pfx(key, cert, [lab["inter"][0], lab["root"][0]], CANARY.encode()))
    other = tmp_path / "other.pfx"  # opened with the canary, fails: the error must not echo it
    other.write_bytes(m.pfx(key, cert, [], b"another-password"))
    ca_cert, ca_key = create_lab_ca("Canary Lab CA", m.NOW)
    (tmp_path / "ca.pem").write_bytes(m.pem(ca_cert))
    (tmp_path / "ca.key").write_bytes(
        ca_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    outputs: list[str] = []
    for args in (
        ["certs", "ca", "add", str(tmp_path / "root.pem")],
        ["certs", "add", str(good), str(other), "--password-file", str(pwfile)],
        ["certs", "add", str(other), "--password-env", "PFX_PW", "--json"],
        ["certs", "add", str(good), "--prompt", "--device", "mac-02"],
        ["certs", "add", str(good), "--password-file", str(pwfile), "--device", "nope"],
        ["certs", "list", "--json", "--all"],
        ["certs", "check"],
        ["certs", "check", "--json"],
        ["certs", "profile", "--out", str(tmp_path / "ca.mobileconfig")],
        ["certs", "issue", "--group", "lab", "--ca-cert", str(tmp_path / "ca.pem"), "--ca-key",
         str(tmp_path / "ca.key"), "--password-file", str(pwfile), "--out", str(tmp_path / "issued")],
        ["certs", "issue", "--group", "lab", "--ca-cert", str(tmp_path / "ca.pem"), "--ca-key",
         str(tmp_path / "root.pem"), "--password-file", str(pwfile)],
    ):  # fmt: skip
        r = run(*args)
        outputs.append(r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit), (args, r.exception)
    assert any("password does not open" in o for o in outputs)  # the failing paths did run
    for text in outputs:
        assert CANARY not in text
    assert CANARY not in caplog.text
    key_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for f in tmp_path.glob("canary.db*"):
        assert CANARY.encode() not in f.read_bytes(), f.name
        assert key_der not in f.read_bytes() and b"PRIVATE KEY" not in f.read_bytes(), f.name  # identity
    assert CANARY.encode() not in (tmp_path / "ca.mobileconfig").read_bytes()
