"""`orchestrate certs ...` end to end through typer's CliRunner, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import plistlib
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlmodel import Session, select
from typer.testing import CliRunner

from orchestrator.certs.pfx import open_pfx, pfx_algorithms
from orchestrator.certs.x509info import describe, load_certificates
from orchestrator.cli import app, context
from orchestrator.state.models import AuditEvent, ClientCertificate, Device, Secret
from tests.orchestrator.certs import certmaterial as m

CANARY = "Canary-PFX-pw-7f3a9"
_registered = False


def _app() -> object:
    global _registered
    if not _registered:
        from orchestrator.cli import _register

        _register()
        _registered = True
    return app


def _setup(orchestrate_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    monkeypatch.setenv("ORCHESTRATE_DATABASE_URL", db_url)
    monkeypatch.setenv("ORCHESTRATE_DATA_DIR", str(orchestrate_env))
    monkeypatch.setenv("ORCHESTRATE_SECRET_KEY", Fernet.generate_key().decode())
    inv = tmp_path / "fleet.csv"
    inv.write_text(
        "name,address,expected_hostname,groups\n"
        "mac-01,127.0.0.1,mac-01.local,lab\n"
        "mac-02,127.0.0.1,mac-02.local,lab\n"
        "mac-03,127.0.0.1,Mac-03.local,other\n"
    )
    r = run("inventory", "import", str(inv))
    assert r.exit_code == 0, r.output
    return tmp_path


@pytest.fixture
def env(orchestrate_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    """The main flows: on SQLite and on PostgreSQL."""
    return _setup(orchestrate_env, tmp_path, monkeypatch, db_url)


@pytest.fixture
def lite(orchestrate_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The other cases: SQLite only (the store code is the same on both)."""
    return _setup(orchestrate_env, tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'lite.db'}")


def run(*args: str, input: str | None = None) -> object:
    res = CliRunner().invoke(_app(), list(args), input=input)  # type: ignore[arg-type]
    return res


def _write_pfx(dir_: Path, name: str, leaf: m.Leaf, chain: str = "full", legacy: bool = True) -> Path:
    lab = m.lab()
    key, cert = m.make_leaf(leaf, lab["inter"])
    chain_certs = {"full": [lab["inter"][0], lab["root"][0]], "none": []}[chain]
    p = dir_ / name
    p.write_bytes(m.pfx(key, cert, chain_certs, CANARY.encode(), legacy=legacy))
    return p


def _pwfile(dir_: Path, value: str = CANARY) -> Path:
    p = dir_ / "pw.txt"
    p.write_text(value + "\n")
    return p


def _engine() -> object:
    return context.engine()


def _rows(model: type) -> list:
    with Session(context.engine()) as s:  # type: ignore[arg-type]
        return list(s.exec(select(model)).all())


def _add_root(tmp: Path) -> None:
    f = tmp / "root.pem"
    f.write_bytes(m.pem(m.lab()["root"][0]))
    r = run("certs", "ca", "add", str(f))
    assert r.exit_code == 0, r.output


# ---------------------------------------------------------------- ca


def test_ca_add_bundle_and_list(env: Path) -> None:
    lab = m.lab()
    bundle = env / "bundle.pem"
    bundle.write_bytes(m.pem(lab["root"][0], lab["inter"][0], lab["other"][0]))
    r = run("certs", "ca", "add", str(bundle))
    assert r.exit_code == 0, r.output
    fr = describe(lab["root"][0])
    assert fr.sha256 in r.output and fr.sha1 in r.output and "O=Lab,CN=Lab Root CA" in r.output
    assert r.output.count("added:") == 3
    # upsert: adding again stores nothing new
    der_file = env / "root.cer"
    der_file.write_bytes(m.der(lab["root"][0]))
    r = run("certs", "ca", "add", str(der_file))
    assert r.exit_code == 0 and "already known" in r.output
    r = run("certs", "ca", "list", "--json")
    data = json.loads(r.stdout)
    assert sorted(d["sha256"] for d in data) == sorted(describe(c[0]).sha256 for c in lab.values())
    assert {d["self_signed"] for d in data} == {True, False}
    events = [e.action for e in _rows(AuditEvent)]
    assert events.count("certs.ca.add") == 2 and "certs.ca.list" in events


def test_ca_add_garbage_is_refused(lite: Path) -> None:
    bad = lite / "junk.cer"
    bad.write_bytes(b"this is not a certificate")
    good = lite / "root.pem"
    good.write_bytes(m.pem(m.lab()["root"][0]))
    r = run("certs", "ca", "add", str(bad), str(good))
    assert r.exit_code == 2
    assert "junk.cer: not a certificate" in r.output
    assert len(json.loads(run("certs", "ca", "list", "--json").stdout)) == 1  # the good one went in


# ---------------------------------------------------------------- add


def test_add_maps_stores_encrypted_and_checks(env: Path) -> None:
    _add_root(env)
    p1 = _write_pfx(env, "one.pfx", m.Leaf(cn="mac-01.local", not_after=m.NOW + timedelta(days=3650)))
    p2 = _write_pfx(
        env, "two.pfx", m.Leaf(cn="x", san=("mac-02.local",), not_after=m.NOW + timedelta(days=3650))
    )
    r = run("certs", "add", str(p1), str(p2), "--password-file", str(_pwfile(env)), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [o["device"] for o in out] == ["mac-01", "mac-02"]
    assert all(o["verdict"]["status"] == "ok" for o in out)
    certs = _rows(ClientCertificate)
    assert len(certs) == 2 and all(c.active for c in certs)
    secrets = _rows(Secret)
    assert sorted(s.kind for s in secrets) == ["identity", "identity", "pfx", "pfx", "pfx-password", "pfx-password"]
    for s in secrets:
        assert CANARY.encode() not in s.ciphertext and p1.read_bytes() not in s.ciphertext
    # the audit log names the password's source, never the password
    events = [e for e in _rows(AuditEvent) if e.action == "certs.add"]
    assert len(events) == 2 and all(CANARY not in e.params_json for e in events)
    assert json.loads(events[0].params_json)["pw_source"] == "file"

    r = run("certs", "check", "--group", "lab", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [(d["device"], d["status"]) for d in rows] == [("mac-01", "ok"), ("mac-02", "ok")]

    r = run("certs", "list", "--json")
    assert sorted(d["device"] for d in json.loads(r.stdout)) == ["mac-01", "mac-02"]


def test_wrong_password_stores_nothing_and_others_continue(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _write_pfx(env, "good.pfx", m.Leaf(cn="mac-01.local"))
    lab = m.lab()
    key, cert = m.make_leaf(m.Leaf(cn="mac-02.local"), lab["inter"])
    other = env / "other-pw.pfx"
    other.write_bytes(m.pfx(key, cert, [], b"a-different-password"))
    monkeypatch.setenv("PFX_PW", CANARY)
    r = run("certs", "add", str(other), str(good), "--password-env", "PFX_PW")
    assert r.exit_code == 2  # bad input: the password does not open it
    assert "other-pw.pfx: the password does not open this PKCS#12 file" in r.output
    assert CANARY not in r.output
    certs = _rows(ClientCertificate)
    assert len(certs) == 1
    with Session(context.engine()) as s:  # type: ignore[arg-type]
        dev = s.get(Device, certs[0].device_id)
        assert dev is not None and dev.name == "mac-01"
    assert len(_rows(Secret)) == 3  # only the good file's PFX, password and identity


def test_add_case_only_mismatch_reports_expected_value(lite: Path) -> None:
    _add_root(lite)
    p = _write_pfx(lite, "wrong-case.pfx", m.Leaf(cn="MAC-01.local", not_after=m.NOW + timedelta(days=3650)))
    r = run("certs", "add", str(p), "--password-file", str(_pwfile(lite)))
    assert r.exit_code == 1
    assert "only the case differs" in r.output and "'mac-01.local'" in r.output
    r = run("certs", "check", "--limit", "mac-01", "--json")
    assert r.exit_code == 1
    row = json.loads(r.stdout)[0]
    assert row["status"] == "name mismatch" and row["expected_hostname"] == "mac-01.local"


def test_add_unmatched_name_is_refused_unless_device_given(lite: Path) -> None:
    _add_root(lite)
    p = _write_pfx(lite, "stranger.pfx", m.Leaf(cn="stranger.local", not_after=m.NOW + timedelta(days=3650)))
    r = run("certs", "add", str(p), "--password-file", str(_pwfile(lite)))
    assert r.exit_code == 1
    assert "no device's host name matches the certificate ('stranger.local')" in r.output
    assert _rows(ClientCertificate) == []
    r = run("certs", "add", str(p), "--password-file", str(_pwfile(lite)), "--device", "mac-02", "--json")
    assert r.exit_code == 1  # stored, but the name still does not match
    out = json.loads(r.stdout)[0]
    assert out["stored"] and out["device"] == "mac-02" and out["verdict"]["status"] == "name mismatch"


def test_add_replaces_previous_and_reports_unknown_chain_ca(lite: Path) -> None:
    a = _write_pfx(lite, "a.pfx", m.Leaf(cn="mac-01.local", key_no=11))
    b = _write_pfx(lite, "b.pfx", m.Leaf(cn="mac-01.local", key_no=12))
    pw = str(_pwfile(lite))
    run("certs", "add", str(a), "--password-file", pw)
    r = run("certs", "add", str(b), "--password-file", pw)
    assert "not a known CA" in r.output  # the root in the PFX is reported, not registered
    certs = _rows(ClientCertificate)
    assert len(certs) == 2 and sum(c.active for c in certs) == 1
    assert json.loads(run("certs", "ca", "list", "--json").stdout) == []
    # re-adding the same file reactivates it without storing it twice
    run("certs", "add", str(a), "--password-file", pw)
    assert len(_rows(ClientCertificate)) == 2 and len(_rows(Secret)) == 6


def test_add_needs_exactly_one_password_source(lite: Path) -> None:
    p = _write_pfx(lite, "x.pfx", m.Leaf())
    r = run("certs", "add", str(p))
    assert r.exit_code == 2 and "exactly one of --password-file" in r.output
    r = run("certs", "add", str(p), "--password-env", "NOPE_NOT_SET")
    assert r.exit_code == 2 and "NOPE_NOT_SET is not set" in r.output


def test_add_without_secret_key_fails_clearly(lite: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCHESTRATE_SECRET_KEY")
    context.settings.cache_clear()
    p = _write_pfx(lite, "x.pfx", m.Leaf())
    r = run("certs", "add", str(p), "--password-file", str(_pwfile(lite)))
    assert r.exit_code == 2
    assert "key" in r.output.lower()
    assert _rows(ClientCertificate) == []


def test_prompt_reads_the_password(lite: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("getpass.getpass", lambda prompt="": CANARY)
    p = _write_pfx(lite, "x.pfx", m.Leaf())
    r = run("certs", "add", str(p), "--prompt", "--json")
    assert json.loads(r.stdout)[0]["stored"] is True


# ---------------------------------------------------------------- check


def test_check_reports_every_status(lite: Path) -> None:
    _add_root(lite)
    pw = str(_pwfile(lite))
    p1 = _write_pfx(lite, "expired.pfx", m.Leaf(cn="mac-01.local", not_after=m.NOW - timedelta(days=1)))
    p2 = _write_pfx(lite, "server.pfx", m.Leaf(cn="mac-02.local", eku=(ExtendedKeyUsageOID.SERVER_AUTH,)))
    for p in (p1, p2):
        run("certs", "add", str(p), "--password-file", pw)
    r = run("certs", "check", "--json")
    assert r.exit_code == 1
    by = {d["device"]: d for d in json.loads(r.stdout)}
    assert by["mac-01"]["status"] == "expired"
    assert by["mac-02"]["status"] == "wrong usage" and "clientAuth" in by["mac-02"]["reason"]
    assert by["mac-03"]["status"] == "no certificate" and "'Mac-03.local'" in by["mac-03"]["reason"]
    r = run("certs", "check")
    assert r.exit_code == 1 and "mac-03" in r.output and "no certificate" in r.output


def test_check_unknown_group_is_bad_input(lite: Path) -> None:
    r = run("certs", "check", "--group", "nope")
    assert r.exit_code != 0
    assert "nope" in r.output


# ---------------------------------------------------------------- profile


def test_profile_parses_and_holds_the_cas(lite: Path) -> None:
    lab = m.lab()
    bundle = lite / "b.pem"
    bundle.write_bytes(m.pem(lab["root"][0], lab["inter"][0]))
    run("certs", "ca", "add", str(bundle))
    out = lite / "ca.mobileconfig"
    r = run("certs", "profile", "--out", str(out))
    assert r.exit_code == 0, r.output
    prof = plistlib.loads(out.read_bytes())
    assert prof["PayloadType"] == "Configuration" and prof["PayloadScope"] == "System"
    types = {p["PayloadType"]: p for p in prof["PayloadContent"]}
    assert set(types) == {"com.apple.security.root", "com.apple.security.pkcs1"}
    assert load_certificates(types["com.apple.security.root"]["PayloadContent"])[0] == lab["root"][0]
    assert load_certificates(types["com.apple.security.pkcs1"]["PayloadContent"])[0] == lab["inter"][0]
    uuids = [prof["PayloadUUID"]] + [p["PayloadUUID"] for p in prof["PayloadContent"]]
    assert len(set(uuids)) == 3
    # stable: the same CAs give the same bytes
    out2 = lite / "again.mobileconfig"
    run("certs", "profile", "--out", str(out2))
    assert out2.read_bytes() == out.read_bytes()
    # one CA by fingerprint prefix
    sha = describe(lab["root"][0]).sha256
    run("certs", "profile", "--out", str(out2), "--ca", sha[:12].lower())
    assert len(plistlib.loads(out2.read_bytes())["PayloadContent"]) == 1
    r = run("certs", "profile", "--out", str(out2), "--ca", "DEADBEEF00")
    assert r.exit_code == 1 and "no single known CA has SHA-256 DEADBEEF00" in r.output


def test_profile_without_cas_is_refused(lite: Path) -> None:
    r = run("certs", "profile", "--out", str(lite / "x.mobileconfig"))
    assert r.exit_code == 1 and "no CA certificates" in r.output


# ---------------------------------------------------------------- issue


def test_issue_for_a_group_and_import(env: Path) -> None:
    from orchestrator.certs.issue import create_lab_ca

    ca_cert, ca_key = create_lab_ca("Lab Issuing Root", m.NOW)
    from cryptography.hazmat.primitives import serialization

    cf, kf = env / "ca.pem", env / "ca.key"
    cf.write_bytes(m.pem(ca_cert))
    kf.write_bytes(
        ca_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    run("certs", "ca", "add", str(cf))
    outdir = env / "issued"
    outdir.mkdir()
    (outdir / "mac-02.pfx").write_bytes(b"an older file, readable by others")
    (outdir / "mac-02.pfx").chmod(0o644)
    pw = _pwfile(env)
    args = ["--ca-cert", str(cf), "--ca-key", str(kf), "--out", str(outdir), "--password-file", str(pw)]
    r = run("certs", "issue", "--group", "lab", *args, "--days", "90")
    assert r.exit_code == 0, r.output
    files = sorted(p.name for p in outdir.iterdir())
    assert files == ["mac-01.pfx", "mac-02.pfx"]
    data = (outdir / "mac-01.pfx").read_bytes()
    assert (outdir / "mac-01.pfx").stat().st_mode & 0o777 == 0o600
    assert (outdir / "mac-02.pfx").stat().st_mode & 0o777 == 0o600  # replaced, not written into the old mode
    contents = open_pfx(data, CANARY.encode())
    f = describe(contents.cert)  # type: ignore[arg-type]
    assert f.subject_cn == "mac-01.local" and f.san_dns == ("mac-01.local",)
    assert f.eku == ("clientAuth",) and f.key_usage == ("digitalSignature", "keyEncipherment")
    assert [c.subject for c in contents.chain] == [ca_cert.subject]
    assert pfx_algorithms(data).macos_compatible
    r = run("certs", "check", "--group", "lab", "--json")
    assert r.exit_code == 0, r.output
    assert {d["status"] for d in json.loads(r.stdout)} == {"ok"}
    assert any(e.action == "certs.issue" for e in _rows(AuditEvent))


def test_issue_refuses_mismatched_ca_key(lite: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    cf, kf = lite / "ca.pem", lite / "ca.key"
    cf.write_bytes(m.pem(m.lab()["root"][0]))
    kf.write_bytes(
        m.key(3).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    r = run("certs", "issue", "--group", "lab", "--ca-cert", str(cf), "--ca-key", str(kf))
    assert r.exit_code == 2 and "does not belong to the CA certificate" in r.output
    assert _rows(ClientCertificate) == []
