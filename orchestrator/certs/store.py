"""The database side of certificates: known CAs, devices' client PFX files, and the fleet check.

PFX bytes and their passwords are stored only as encrypted secrets (kinds `pfx`, `pfx-password`); the
ClientCertificate row keeps what was read from the certificate, and secret ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Protocol

from cryptography import x509
from sqlalchemy import bindparam
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from orchestrator.certs.checks import CertStatus, CertVerdict, check_client_cert
from orchestrator.certs.names import live_names, names_of
from orchestrator.certs.pfx import (
    PfxAlgorithms,
    PfxContents,
    PfxError,
    client_facts,
    identity_pem,
    open_identity,
    open_pfx,
    pfx_algorithms,
)
from orchestrator.certs.x509info import CertFacts, describe, normalize_fingerprint, to_der
from orchestrator.secrets import SecretBox, SecretNotFound, load_secret, store_secret
from orchestrator.state.models import CaCertificate, ClientCertificate, Device, Secret, utcnow
from tasks.hostnames import DEFAULT_NAME_RULE


class CertStoreError(ValueError):
    """A certificate operation refused; the message says what to do and never holds a secret."""


class NoDeviceMatch(CertStoreError):
    """No device's host name matches the certificate (and no --device was given)."""


class UnknownCa(CertStoreError):
    """A CA fingerprint that is not registered."""


class SecretVault(Protocol):
    """What we need of the secret store (orchestrator.secrets: SecretBox + store/load functions)."""

    def store(self, session: Session, name: str, kind: str, value: bytes) -> Secret: ...

    def load(self, session: Session, secret_id: str) -> bytes: ...


@dataclass(frozen=True)
class BoxVault:
    """The SecretVault over orchestrator.secrets (the one place that couples us to its API)."""

    box: SecretBox

    def store(self, session: Session, name: str, kind: str, value: bytes) -> Secret:
        return store_secret(session, self.box, name, kind, value)

    def load(self, session: Session, secret_id: str) -> bytes:
        return load_secret(session, self.box, secret_id)


# ---------------------------------------------------------------- CAs


@dataclass(frozen=True)
class CaAdded:
    row: CaCertificate
    facts: CertFacts
    created: bool


def add_cas(session: Session, certs: Sequence[x509.Certificate]) -> list[CaAdded]:
    """Register certificates as known CAs, upserting by SHA-256 (an existing row is left as it is)."""
    out: list[CaAdded] = []
    for cert in certs:
        facts = describe(cert)
        row = session.exec(select(CaCertificate).where(CaCertificate.sha256 == facts.sha256)).first()
        created = row is None
        if row is None:
            row = CaCertificate(
                sha256=facts.sha256,
                sha1=facts.sha1,
                subject=facts.subject,
                issuer=facts.issuer,
                not_before=facts.not_before,
                not_after=facts.not_after,
                is_self_signed=facts.self_signed,
                der=to_der(cert),
            )
            session.add(row)
            session.flush()
        out.append(CaAdded(row=row, facts=facts, created=created))
    return out


def list_cas(session: Session) -> list[CaCertificate]:
    return list(session.exec(select(CaCertificate).order_by(col(CaCertificate.subject))).all())


def ca_certificates(session: Session, sha256s: Sequence[str] = ()) -> list[x509.Certificate]:
    """The known CAs (all, or those named by SHA-256, any case, colons allowed). Raises UnknownCa."""
    rows = list_cas(session)
    if sha256s:
        by_fp = {r.sha256: r for r in rows}
        picked: list[CaCertificate] = []
        for fp in sha256s:
            want = normalize_fingerprint(fp)
            matches = [r for k, r in by_fp.items() if k == want or (len(want) >= 8 and k.startswith(want))]
            if len(matches) != 1:
                raise UnknownCa(f"no single known CA has SHA-256 {fp}; see `orchestrate certs ca list`")
            picked.append(matches[0])
        rows = picked
    return [x509.load_der_x509_certificate(r.der) for r in rows]


def known_ca_facts(session: Session) -> list[CertFacts]:
    return [describe(c) for c in ca_certificates(session)]


# ---------------------------------------------------------------- client PFX files


@dataclass
class PfxImport:
    """What happened to one PFX file that opened."""

    source: str
    device: Device
    row: ClientCertificate
    verdict: CertVerdict
    algorithms: PfxAlgorithms | None
    unchanged: bool = False
    chain_known: list[str] = field(default_factory=list)  # subjects of CAs in the PFX already known
    chain_unknown: list[CertFacts] = field(default_factory=list)  # CAs in the PFX not registered


def _names(facts: CertFacts) -> list[str]:
    names = ([facts.subject_cn] if facts.subject_cn else []) + list(facts.san_dns)
    return list(dict.fromkeys(names))  # CN and SAN usually repeat each other


def map_device(session: Session, facts: CertFacts, source: str, device_name: str | None = None) -> Device:
    """The device a certificate belongs to.

    With device_name, that device (its name is still checked by the verdict). Otherwise the one device one of
    whose names (`names_of`: the live Sharing-pane name and `hostname` from `inventory probe` or a run, and
    the inventory's host name) equals the CN or a SAN DNS name exactly; failing that, the one whose name
    differs only in case (the verdict then reports the mismatch with the exact expected value). Raises
    NoDeviceMatch or CertStoreError (unknown --device, several devices).
    """
    if device_name is not None:
        dev = session.exec(select(Device).where(Device.name == device_name)).first()
        if dev is None:
            raise CertStoreError(f"{source}: no device named {device_name!r} in the inventory")
        return dev
    names = _names(facts)
    known = [(d, names_of(d)) for d in session.exec(select(Device)).all()]
    carried = {d.id: [n for n in ns if n in names] for d, ns in known}
    exact = [d for d, _ in known if carried[d.id]]
    if not exact:
        lowered = {n.lower() for n in names}
        carried = {d.id: [n for n in ns if n.lower() in lowered] for d, ns in known}
        exact = [d for d, _ in known if carried[d.id]]
    if len(exact) == 1:
        return exact[0]
    shown = ", ".join(repr(n) for n in names) or "no CN or SAN DNS name"
    if len(exact) > 1:
        ordered = sorted(exact, key=lambda d: d.name)
        which = "; ".join(f"{d.name} ({', '.join(carried[d.id])})" for d in ordered)
        raise CertStoreError(
            f"{source}: certificate names {shown}, which several devices carry ({which}); choose one with "
            "--device NAME"
        )
    raise NoDeviceMatch(
        f"{source}: no device's host name matches the certificate ({shown}); the subject CN or a SAN DNS "
        "name must equal a device's host name exactly: run `orchestrate inventory probe` so the Macs' live "
        "names are known, set expected_hostname in the inventory, or give --device NAME"
    )


def import_pfx(
    session: Session,
    vault: SecretVault,
    data: bytes,
    password: bytes,
    source: str,
    *,
    now: datetime,
    warn_days: int = 30,
    device_name: str | None = None,
    rule: str = DEFAULT_NAME_RULE,
) -> PfxImport:
    """Open a PFX for real, map it to a device, store it (PFX and password as secrets) as the device's
    active certificate (earlier ones become inactive), and judge it.

    Raises PfxPasswordError / PfxFormatError (nothing stored), NoDeviceMatch or CertStoreError (nothing
    stored). A PFX that opens and maps is stored even when its verdict is not ok: `certs check` shows it.
    """
    contents = open_pfx(data, password, source)
    facts = client_facts(contents)
    if facts is None:
        if contents.key is None and contents.chain:
            # without a key, cryptography cannot tell which certificate is the identity's: all are
            # "additional" ones
            raise PfxError(
                f"{source}: the PKCS#12 holds {len(contents.chain)} certificate(s) but no private key; "
                "export the identity together with its private key"
            )
        raise PfxError(f"{source}: the PKCS#12 holds no certificate")
    device = map_device(session, facts.cert, source, device_name)
    try:
        algorithms: PfxAlgorithms | None = pfx_algorithms(data)
    except PfxError:
        algorithms = None  # BER-encoded files open but are not walkable; the workflow re-wraps anyway
    known = known_ca_facts(session)
    live = live_names(device)
    verdict = check_client_cert(facts, device.target_hostname, known, now, warn_days, live, rule)

    digest = hashlib.sha256(data).hexdigest()[:24]
    pfx_name = f"pfx:{device.id}:{digest}"
    existing = session.exec(select(Secret).where(Secret.name == pfx_name)).first()
    unchanged = False
    row: ClientCertificate | None = None
    if existing is not None:
        row = session.exec(
            select(ClientCertificate).where(ClientCertificate.pfx_secret_id == existing.id)
        ).first()
    if row is not None:
        unchanged = row.active
    else:
        pfx_secret = vault.store(session, pfx_name, "pfx", data)
        pw_secret = vault.store(session, f"pfx-password:{device.id}:{digest}", "pfx-password", password)
        cert = facts.cert
        row = ClientCertificate(
            device_id=device.id,
            sha1=cert.sha1,
            sha256=cert.sha256,
            subject=cert.subject,
            subject_cn=cert.subject_cn,
            san_dns_json=json.dumps(list(cert.san_dns)),
            issuer=cert.issuer,
            not_before=cert.not_before,
            not_after=cert.not_after,
            pfx_secret_id=pfx_secret.id,
            password_secret_id=pw_secret.id,
        )
        session.add(row)
    if session.exec(select(Secret.id).where(Secret.name == identity_secret_name(row))).first() is None:
        # new rows, and rows stored before identities were kept
        vault.store(session, identity_secret_name(row), "identity", identity_pem(contents))
    for other in session.exec(
        select(ClientCertificate).where(
            ClientCertificate.device_id == device.id, col(ClientCertificate.active)
        )
    ).all():
        if other.id != row.id:
            other.active = False
    row.active = True
    row.added_at = row.added_at or utcnow()
    session.flush()
    known_fps = {c.sha256 for c in known}
    result = PfxImport(source=source, device=device, row=row, verdict=verdict, algorithms=algorithms)
    result.unchanged = unchanged
    for c in facts.chain:
        if c.sha256 in known_fps:
            result.chain_known.append(c.subject)
        else:
            result.chain_unknown.append(c)
    return result


def active_certificate(session: Session, device_id: str) -> ClientCertificate | None:
    return session.exec(_active_certificate_query(), params={"b_device_id": device_id}).first()


@cache
def _active_certificate_query() -> SelectOfScalar[ClientCertificate]:
    """Built once: building a statement costs more CPU than running it (one per device job)."""
    return (
        select(ClientCertificate)
        .where(ClientCertificate.device_id == bindparam("b_device_id"), col(ClientCertificate.active))
        .order_by(col(ClientCertificate.added_at).desc())
    )


def list_client_certs(
    session: Session, include_inactive: bool = False
) -> list[tuple[ClientCertificate, Device]]:
    q = select(ClientCertificate, Device).where(ClientCertificate.device_id == Device.id)
    if not include_inactive:
        q = q.where(col(ClientCertificate.active))
    q = q.order_by(col(Device.name), col(ClientCertificate.added_at).desc())
    return [(c, d) for c, d in session.exec(q).all()]


def load_pfx(session: Session, vault: SecretVault, row: ClientCertificate) -> tuple[bytes, bytes]:
    """The stored PFX bytes and password of a ClientCertificate (decrypted; keep them out of logs)."""
    return vault.load(session, row.pfx_secret_id), vault.load(session, row.password_secret_id)


def identity_secret_name(row: ClientCertificate) -> str:
    """The secret holding a certificate's identity as PEM (`identity_pem`), stored with its PFX at import."""
    return f"identity:{row.id}"


def load_identity(session: Session, vault: SecretVault, row: ClientCertificate, source: str) -> PfxContents:
    """A certificate's key, certificate and chain: from its identity secret (no RSA key check: it was checked
    at import), or by opening the stored PFX for a row imported before identities were kept."""
    try:
        return open_identity(vault.load(session, identity_secret_name(row)), source)
    except SecretNotFound:
        data, password = load_pfx(session, vault, row)
        return open_pfx(data, password, source)


@dataclass(frozen=True)
class DeviceCheck:
    device: Device
    cert: ClientCertificate | None
    verdict: CertVerdict


def check_devices(
    session: Session,
    vault: SecretVault,
    devices: Sequence[Device],
    now: datetime,
    warn_days: int = 30,
    rule: str = DEFAULT_NAME_RULE,
) -> list[DeviceCheck]:
    """Judge every device's active certificate (opening each stored PFX for real) against the Mac's live
    names under `rule` when it reported them (`inventory probe`, a run), else its target host name, and
    the known CAs. A stored PFX that no longer opens is reported, not raised."""
    known = known_ca_facts(session)
    out: list[DeviceCheck] = []
    for dev in devices:
        row = active_certificate(session, dev.id)
        live = live_names(dev)
        if row is None:
            none = check_client_cert(None, dev.target_hostname, known, now, warn_days, live, rule)
            out.append(DeviceCheck(dev, None, none))
            continue
        data, password = load_pfx(session, vault, row)
        try:
            facts = client_facts(open_pfx(data, password, f"stored PFX of {dev.name}"))
        except PfxError as e:
            verdict = CertVerdict(CertStatus.NO_CERTIFICATE, str(e), dev.target_hostname)
        else:
            verdict = check_client_cert(facts, dev.target_hostname, known, now, warn_days, live, rule)
        out.append(DeviceCheck(dev, row, verdict))
    return out
