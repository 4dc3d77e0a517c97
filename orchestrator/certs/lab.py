"""Lab issuing for the fleet (`orchestrate certs issue`): the lab CA read and checked, then one client PFX
per targeted device, named as `certs check` expects, written to a file and/or stored as the device's
certificate. For labs and demos only; the certificates themselves are made in `issue`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from sqlalchemy.engine import Engine

from inventory.userfiles import CERTIFICATE, PASSWORD, PRIVATE_KEY, read_user_file
from orchestrator import audit, inventory_store
from orchestrator.certs import store
from orchestrator.certs.issue import SigningKey, check_ca_pair, issue_client_pfx, load_ca_key
from orchestrator.certs.names import certificate_name
from orchestrator.certs.pfx import one_time_password
from orchestrator.certs.x509info import load_certificates
from orchestrator.secrets import write_private
from orchestrator.state.db import session_scope


@dataclass(frozen=True)
class LabCa:
    """The lab CA: its certificate first, then the others its file carried (all go into each PFX)."""

    certs: list[x509.Certificate]
    key: SigningKey
    cert_file: Path
    key_file: Path


def load_lab_ca(cert_file: Path, key_file: Path) -> LabCa:
    """Read the CA certificate and key and check that they belong together and may sign. Raises
    CertificateLoadError, IssueError, UserFileError or OSError with a message naming the file."""
    certs = load_certificates(read_user_file(cert_file, CERTIFICATE), str(cert_file))
    key = load_ca_key(read_user_file(key_file, PRIVATE_KEY), str(key_file))
    check_ca_pair(certs[0], key)
    return LabCa(certs, key, cert_file, key_file)


def read_password_file(path: Path) -> bytes:
    """The one password every written PFX gets. Raises UserFileError, or ValueError when it is empty."""
    # one trailing newline is the file's, not the password's
    fixed = read_user_file(path, PASSWORD).removesuffix(b"\n").removesuffix(b"\r")
    if not fixed:
        raise ValueError(f"{path}: the password is empty")
    return fixed


@dataclass(frozen=True)
class Issued:
    """One device's new identity: the name it was issued for, where it was written, how it was stored."""

    device: str
    hostname: str
    file: Path | None = None
    stored: store.PfxImport | None = None


def issue_for_targets(
    engine: Engine,
    ca: LabCa,
    groups: list[str],
    limits: list[str],
    *,
    days: int,
    now: datetime,
    rule: str,
    actor: str,
    out: Path | None = None,
    password: bytes | None = None,
    vault: store.BoxVault | None = None,
) -> list[Issued]:
    """Issue a PFX for each targeted device (CN = SAN DNS = its live name when probed, else by rule),
    protected by password (default: a one-time password each). With out: written to out/<device>.pfx
    (mode 0600). With vault: stored as the device's certificate. Recorded in the audit log."""
    with session_scope(engine) as s:
        devices = inventory_store.resolve_targets(s, groups, limits)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    issued: list[Issued] = []
    for dev in devices:
        pw = password or one_time_password()
        name = certificate_name(dev, rule)
        data = issue_client_pfx(ca.certs[0], ca.key, name, pw, now, days, chain=ca.certs)
        dest = None
        if out is not None:
            dest = out / f"{dev.name}.pfx"
            write_private(dest, data)  # atomic and 0600 even over an older file of another mode
        stored = None
        if vault is not None:
            with session_scope(engine) as s:
                stored = store.import_pfx(
                    s, vault, data, pw, f"issued for {dev.name}", now=now, device_name=dev.name, rule=rule
                )
        issued.append(Issued(dev.name, name, dest, stored))
    with session_scope(engine) as s:
        audit.record(s, actor, "certs.issue", {
            "groups": groups, "limits": limits, "ca_cert": str(ca.cert_file), "ca_key_file": str(ca.key_file),
            "days": days, "out": str(out) if out else None, "imported": vault is not None,
            "devices": [i.device for i in issued],
        })  # fmt: skip
    return issued
