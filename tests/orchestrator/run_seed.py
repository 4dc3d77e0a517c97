"""Rows for planning, report and CLI tests: devices in groups, client certificates, artifacts, CAs, runs.

Written straight into the tables (the certificate and artifact stores have their own tests); secrets are
placeholders, since planning only reads what was recorded from a certificate, never the PFX."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from orchestrator.state.models import (
    Artifact,
    CaCertificate,
    ClientCertificate,
    Device,
    DeviceJob,
    Group,
    GroupChild,
    GroupMember,
    Run,
    Secret,
    utcnow,
)


def group(session: Session, name: str, vars: dict[str, Any] | None = None, parent: str | None = None) -> Group:
    g = session.exec(select(Group).where(Group.name == name)).first()
    if g is None:
        g = Group(name=name)
    g.vars_json = json.dumps(vars or {}, sort_keys=True)
    session.add(g)
    session.flush()
    if parent is not None:
        p = group_named(session, parent)
        session.add(GroupChild(parent_id=p.id, child_id=g.id))
        session.flush()
    return g


def group_named(session: Session, name: str) -> Group:
    g = session.exec(select(Group).where(Group.name == name)).first()
    return g if g is not None else group(session, name)


def device(
    session: Session,
    name: str,
    groups: Sequence[str] = ("lab",),
    *,
    cert_names: Sequence[str] | None = None,
    cert: bool = True,
    not_after: datetime | None = None,
    hostname: str | None = None,
    declared: bool = True,
) -> Device:
    """A device (expected host name `hostname` or NAME.local; none unless declared) in `groups`, with an active certificate whose
    CN is the first of cert_names (default: the host name) and SANs the rest, unless cert=False."""
    expected = (hostname or f"{name}.local") if declared else None
    d = Device(name=name, address="127.0.0.1", port=22, expected_hostname=expected)
    session.add(d)
    session.flush()
    for gname in groups:
        session.add(GroupMember(group_id=group_named(session, gname).id, device_id=d.id))
    if cert:
        names = list(cert_names) if cert_names is not None else [d.target_hostname]
        certificate(session, d, names, not_after=not_after)
    session.flush()
    return d


def certificate(
    session: Session, d: Device, names: Sequence[str], *, not_after: datetime | None = None
) -> ClientCertificate:
    now = utcnow()
    tag = uuid.uuid4().hex[:8]
    pfx = Secret(name=f"pfx:{d.id}:{tag}", kind="pfx", ciphertext=b"placeholder", key_id="k")
    pw = Secret(name=f"pfx-password:{d.id}:{tag}", kind="pfx-password", ciphertext=b"placeholder", key_id="k")
    session.add_all([pfx, pw])
    session.flush()
    row = ClientCertificate(
        device_id=d.id, sha1="a" * 40, sha256=uuid.uuid4().hex * 2, subject=f"CN={names[0] if names else ''}",
        subject_cn=names[0] if names else None, san_dns_json=json.dumps(list(names[1:])), issuer="CN=Lab CA",
        not_before=now - timedelta(days=1), not_after=not_after or now + timedelta(days=365),
        pfx_secret_id=pfx.id, password_secret_id=pw.id,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


def artifact(session: Session, version: str, size: int = 5_000_000) -> Artifact:
    sha = uuid.uuid4().hex * 2
    a = Artifact(sha256=sha, version=version, filename=f"1e.client-macOS_v{version}.dmg", size=size,
                 path=f"/store/{sha}")  # fmt: skip
    session.add(a)
    session.flush()
    return a


def ca(session: Session, subject: str = "CN=Lab CA") -> CaCertificate:
    now = utcnow()
    row = CaCertificate(sha256=uuid.uuid4().hex * 2, sha1="b" * 40, subject=subject, issuer=subject,
                        not_before=now, not_after=now + timedelta(days=3650), is_self_signed=True, der=b"x")  # fmt: skip
    session.add(row)
    session.flush()
    return row


def many_devices(session: Session, count: int, groups: Sequence[str] = ("fleet",)) -> list[str]:
    """count devices (fleet-00000...) in bulk, with a spread of versions and outcomes; returns their ids."""
    gids = [group_named(session, g).id for g in groups]
    now = utcnow()
    rows, members = [], []
    for i in range(count):
        did = uuid.uuid4().hex
        rows.append({
            "id": did, "name": f"fleet-{i:05d}", "address": "10.0.0.1", "port": 22, "vars_json": "{}",
            "created_at": now, "updated_at": now,
            "installed_version": (None, "8.0.1.23", "8.0.2.5")[i % 3], "connected": (None, False, True)[i % 3],
            "last_outcome": (None, "failed", "succeeded")[i % 3],
            "last_error": "HostUnreachable: connection refused" if i % 3 == 1 else None,
        })  # fmt: skip
        members.append({"group_id": gids[i % len(gids)], "device_id": did})
    session.execute(insert(Device), rows)
    session.execute(insert(GroupMember), members)
    session.flush()
    return [r["id"] for r in rows]


def one_job(engine: Engine, name: str = "mac-01") -> tuple[str, str, str]:
    """A device, an install run and its pending job for that device, committed: (job id, device id, run id)."""
    with Session(engine) as s:
        device, run = Device(name=name, address="127.0.0.1"), Run(kind="install")
        s.add_all([device, run])
        s.flush()
        job = DeviceJob(run_id=run.id, device_id=device.id)
        s.add(job)
        s.commit()
        return job.id, device.id, run.id
