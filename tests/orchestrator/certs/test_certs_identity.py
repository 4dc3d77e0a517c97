"""The identity kept beside each stored PFX: a run reads the key and certificates from it without opening
the PFX again (no RSA key check per device), and falls back to the PFX for rows imported before it existed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from sqlmodel import Session, select

from inventory.formats import loads
from orchestrator.certs.pfx import (
    PfxFormatError,
    identity_pem,
    one_time_password,
    open_identity,
    open_pfx,
)
from orchestrator.certs.store import BoxVault, identity_secret_name, import_pfx, load_identity
from orchestrator.inventory_store import import_inventory, remove_devices
from orchestrator.secrets import SecretBox
from orchestrator.state.db import create_db_engine, init_schema
from orchestrator.state.models import Secret
from tests.orchestrator.certs import certmaterial as m

PW = b"identity-Canary-0815"


def _spki(key: object) -> bytes:
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


def _pfx(cn: str = "mac-01.local") -> bytes:
    lab = m.lab()
    key, cert = m.make_leaf(m.Leaf(cn=cn), lab["inter"])
    return m.pfx(key, cert, [lab["inter"][0], lab["root"][0]], PW)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[Session, BoxVault]]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'id.db'}")
    init_schema(engine)
    inv = {"hosts": [{"name": "mac-01", "address": "127.0.0.1", "expected_hostname": "mac-01.local"}]}
    with Session(engine) as s:
        import_inventory(s, loads(json.dumps(inv), "inventory.yaml"), "test")
        s.commit()
        yield s, BoxVault(SecretBox(Fernet.generate_key()))
    engine.dispose()


def test_identity_round_trip_keeps_key_certificate_and_chain_order() -> None:
    src = open_pfx(_pfx(), PW)
    back = open_identity(identity_pem(src))
    assert back.cert == src.cert and back.chain == src.chain and back.key_matches_cert
    assert _spki(back.key) == _spki(src.key)


def test_rsa_identity_round_trip() -> None:
    lab = m.lab()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mac-01.local")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(lab["root"][0].subject)
        .public_key(rsa_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(m.NOW).not_valid_after(m.NOW + (m.NOW - m.NOW.replace(year=m.NOW.year - 1)))
        .sign(lab["root"][1], hashes.SHA256())
    )  # fmt: skip
    src = open_pfx(m.pfx(rsa_key, cert, [lab["root"][0]], PW), PW)
    back = open_identity(identity_pem(src))
    assert isinstance(back.key, rsa.RSAPrivateKey)
    assert back.key.private_numbers() == rsa_key.private_numbers()
    assert back.cert == cert and back.chain == (lab["root"][0],)


@pytest.mark.parametrize(
    "data",
    [
        b"garbage",
        m.pem(m.lab()["root"][0]),  # certificates but no key
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ],
)
def test_open_identity_refuses_what_is_not_an_identity(data: bytes) -> None:
    with pytest.raises(PfxFormatError, match=r"^mac-01: not a stored identity"):
        open_identity(data, "mac-01")


def test_import_keeps_the_identity_encrypted_and_a_run_reads_it(db: tuple[Session, BoxVault]) -> None:
    s, vault = db
    data = _pfx()
    imp = import_pfx(s, vault, data, PW, "mac-01.pfx", now=m.NOW, device_name="mac-01")
    s.commit()
    secret = s.exec(select(Secret).where(Secret.name == identity_secret_name(imp.row))).one()
    assert secret.kind == "identity"
    assert b"PRIVATE KEY" not in secret.ciphertext
    got = load_identity(s, vault, imp.row, "stored identity of mac-01")
    want = open_pfx(data, PW)
    assert got.cert == want.cert and got.chain == want.chain and _spki(got.key) == _spki(want.key)


def test_row_without_identity_falls_back_to_the_pfx_and_a_reimport_adds_it(
    db: tuple[Session, BoxVault],
) -> None:
    s, vault = db
    data = _pfx()
    row = import_pfx(s, vault, data, PW, "mac-01.pfx", now=m.NOW, device_name="mac-01").row
    s.delete(s.exec(select(Secret).where(Secret.name == identity_secret_name(row))).one())
    s.commit()  # as a database written before identities were kept
    got = load_identity(s, vault, row, "mac-01")
    assert got.cert == open_pfx(data, PW).cert and got.key_matches_cert
    again = import_pfx(s, vault, data, PW, "mac-01.pfx", now=m.NOW, device_name="mac-01")
    s.commit()
    assert again.row.id == row.id and again.unchanged
    assert s.exec(select(Secret).where(Secret.name == identity_secret_name(row))).first() is not None


def test_removing_the_device_removes_its_identity(db: tuple[Session, BoxVault]) -> None:
    s, vault = db
    row = import_pfx(s, vault, _pfx(), PW, "mac-01.pfx", now=m.NOW, device_name="mac-01").row
    s.commit()
    assert s.exec(select(Secret).where(Secret.name == identity_secret_name(row))).first() is not None
    remove_devices(s, ["mac-01"], "test")
    s.commit()
    assert s.exec(select(Secret)).all() == []  # PFX, password and identity


def test_one_time_password_uses_the_whole_alphabet() -> None:
    seen = set(b"".join(one_time_password() for _ in range(200)))
    assert seen == set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
