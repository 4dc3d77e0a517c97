"""The per-device checks made offline, before anything is sent to a Mac: a device refused here gets a
FAILED job with a typed reason. Its client certificate (present, valid now, naming the Mac) and whether
another run holds it. The certificate's names are checked against the Mac's live names when known, else
the host name the Mac last reported, else the one the inventory declares; a device with none of them is
checked by the runner's preflight against what the Mac reports.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from orchestrator.certs.names import live_names
from orchestrator.leases import live_locks
from orchestrator.state.models import ClientCertificate, Device
from tasks.hostnames import DEFAULT_NAME_RULE, MacNames, match_names

__all__ = ["cert_problem", "refusals"]


def cert_problem(
    cert: ClientCertificate | None,
    hostname: str | None,
    now: datetime,
    names: MacNames | None = None,
    rule: str = DEFAULT_NAME_RULE,
) -> tuple[str, str] | None:
    """The reason a device's active certificate cannot be used, or None. names: the Mac's live names
    (`inventory probe`, a run's facts), judged under `rule`; else hostname: the host name declared in the
    inventory; neither skips the name check, which the runner's preflight then makes against what the Mac
    reports."""
    if cert is None:
        return (
            "NoCertificate",
            "no client certificate stored for this device: add its PFX with "
            "`orchestrate certs add PFX --password-file F`",
        )
    try:
        san = [str(n) for n in json.loads(cert.san_dns_json or "[]")]
    except ValueError:
        san = []
    carried = list(dict.fromkeys(([cert.subject_cn] if cert.subject_cn else []) + san))
    if names is not None:
        named = match_names(carried, names, rule)
        if not named.ok:
            return ("HostnameMismatch", f"{named.problem()}: {named.hint()}")
        hostname = None  # judged against the live names
    if hostname is not None and hostname not in carried:
        shown = ", ".join(repr(n) for n in carried) or "no CN and no SAN DNS name"
        case = any(n.lower() == hostname.lower() for n in carried)
        hint = " (only the case differs; the match is case-sensitive)" if case else ""
        return (
            "HostnameMismatch",
            f"the certificate names {shown} but the Mac's host name is {hostname!r}{hint}: issue one for "
            f"exactly {hostname!r} and add it with `orchestrate certs add`",
        )
    if now > cert.not_after:
        return (
            "CertificateExpired",
            f"the client certificate expired on {cert.not_after:%Y-%m-%d}: issue a new one and add it "
            "with `orchestrate certs add`",
        )
    if now < cert.not_before:
        return (
            "CertificateNotYetValid",
            f"the client certificate is valid only from {cert.not_before:%Y-%m-%d %H:%M} UTC: wait, or "
            "issue one valid now",
        )
    return None


def refusals(
    session: Session, devices: Sequence[Device], now: datetime, rule: str = DEFAULT_NAME_RULE
) -> dict[str, tuple[str, str]]:
    """Device id -> (error_type, message) for each device that must not run; two queries in all."""
    ids = {d.id for d in devices}
    certs: dict[str, ClientCertificate] = {}
    rows = session.exec(
        select(ClientCertificate)
        .where(col(ClientCertificate.active))
        .order_by(col(ClientCertificate.added_at))
    ).all()
    for c in rows:
        if c.device_id in ids:
            certs[c.device_id] = c  # the newest active one wins, as in certs.store.active_certificate
    locks = live_locks(session, ids, now)
    out: dict[str, tuple[str, str]] = {}
    for d in devices:
        lock = locks.get(d.id)
        if lock is not None:
            out[d.id] = (
                "DeviceBusy",
                f"run {lock.run_id} holds this device until {lock.expires_at:%Y-%m-%d %H:%M:%S} UTC: wait "
                f"for it (`orchestrate runs show {lock.run_id[:8]}`) or leave the device out with --limit",
            )
            continue
        # Only a host name we know is checked: an inventory name alone ("mac-01") is a handle, not what
        # the Mac's `hostname` prints, and refusing on it would turn good devices away.
        problem = cert_problem(
            certs.get(d.id), d.reported_hostname or d.expected_hostname, now, live_names(d), rule
        )
        if problem is not None:
            out[d.id] = problem
    return out
