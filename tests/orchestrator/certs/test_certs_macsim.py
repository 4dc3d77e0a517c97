"""The checks and `certs` commands over the certificate files macsim generates for its fleet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from macsim.artifacts.certs import BAD_KINDS, CertArtifacts, write_cert_artifacts
from orchestrator.certs.checks import CertStatus, check_client_cert
from orchestrator.certs.pfx import client_facts, open_pfx, pfx_algorithms
from orchestrator.certs.x509info import describe, load_certificates
from orchestrator.state.models import utcnow
from tests.orchestrator.certs.test_certs_cli import _setup, run

HOSTS = {"mac-01": "mac-01.local", "mac-02": "Studio-Mac.example.test"}
EXPECTED = {
    "wrong-case": CertStatus.NAME_MISMATCH,
    "expired": CertStatus.EXPIRED,
    "server-auth": CertStatus.WRONG_USAGE,
    "no-chain": CertStatus.CHAIN_INCOMPLETE,
    "openssl3-default": CertStatus.OK,  # usable: the workflow re-wraps it for macOS
}


@pytest.fixture(scope="module")
def arts(tmp_path_factory: pytest.TempPathFactory) -> CertArtifacts:
    return write_cert_artifacts(tmp_path_factory.mktemp("certs"), HOSTS)


def _known(arts: CertArtifacts) -> list:
    return [describe(c) for c in load_certificates(arts.ca_bundle.read_bytes())]


def test_expected_covers_every_bad_kind() -> None:
    assert set(EXPECTED) == set(BAD_KINDS)


def test_bundle_splits_into_the_two_roots(arts: CertArtifacts) -> None:
    facts = _known(arts)
    assert [f.subject_cn for f in facts] == ["macfleet Lab Root CA", "macfleet Switch Root CA"]
    assert all(f.self_signed and f.is_ca for f in facts)
    assert describe(load_certificates(arts.lab_ca.der.read_bytes())[0]).sha256 == facts[0].sha256


@pytest.mark.parametrize("handle", sorted(HOSTS))
def test_good_pfx_is_ok(arts: CertArtifacts, handle: str) -> None:
    pfx = arts.host_pfx[handle]
    facts = client_facts(open_pfx(pfx.read_bytes(), arts.password_for(pfx).encode(), pfx.name))
    v = check_client_cert(facts, HOSTS[handle], _known(arts), utcnow(), 30)
    assert v.status == CertStatus.OK, v.reason
    assert pfx_algorithms(pfx.read_bytes()).macos_compatible


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_pfx_gets_its_status(arts: CertArtifacts, kind: str) -> None:
    pfx = arts.bad_pfx[kind]
    facts = client_facts(open_pfx(pfx.read_bytes(), arts.password_for(pfx).encode(), pfx.name))
    v = check_client_cert(facts, HOSTS[arts.bad_host], _known(arts), utcnow(), 30)
    assert v.status == EXPECTED[kind], v.reason
    if kind == "wrong-case":
        assert "only the case differs" in v.reason and repr(HOSTS[arts.bad_host]) in v.reason


def test_openssl3_default_is_flagged_for_rewrap(arts: CertArtifacts) -> None:
    algs = pfx_algorithms(arts.bad_pfx["openssl3-default"].read_bytes())
    assert not algs.macos_compatible and algs.mac == "sha256"


def test_certs_check_on_the_macsim_fleet(
    arts: CertArtifacts, orchestrate_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _setup(orchestrate_env, tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'm.db'}")
    inv = tmp_path / "macsim.csv"
    inv.write_text(
        "name,address,expected_hostname\n" + "".join(f"{h},127.0.0.1,{n}\n" for h, n in HOSTS.items())
    )
    assert run("inventory", "import", str(inv)).exit_code == 0
    assert run("certs", "ca", "add", str(arts.ca_bundle)).exit_code == 0
    for handle, pfx in arts.host_pfx.items():
        monkeypatch.setenv("PFX_PW", arts.password_for(pfx))
        r = run("certs", "add", str(pfx), "--password-env", "PFX_PW")
        assert r.exit_code == 0, r.output
    r = run("certs", "check", "--limit", "mac-01,mac-02", "--json")
    assert r.exit_code == 0, r.output
    assert {d["device"]: d["status"] for d in json.loads(r.stdout)} == {"mac-01": "ok", "mac-02": "ok"}
    for kind in BAD_KINDS:
        pfx = arts.bad_pfx[kind]
        monkeypatch.setenv("PFX_PW", arts.password_for(pfx))
        r = run("certs", "add", str(pfx), "--password-env", "PFX_PW")
        assert arts.password_for(pfx) not in r.output
        r = run("certs", "check", "--limit", arts.bad_host, "--json")
        row = json.loads(r.stdout)[0]
        assert row["status"] == str(EXPECTED[kind]), (kind, row["reason"])
        assert r.exit_code == (0 if EXPECTED[kind] == CertStatus.OK else 1)
