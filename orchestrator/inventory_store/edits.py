"""Changing devices in place: removal (with what belongs to them alone), renaming, and recording what
`inventory probe` read."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from inventory.names import host_name_problem
from orchestrator import audit
from orchestrator.certs.store import identity_secret_name
from orchestrator.inventory_store.common import InventoryStoreError, get_devices, refuse_case_clashes
from orchestrator.state.models import (
    ClientCertificate,
    Device,
    DeviceJob,
    DeviceLock,
    GroupMember,
    HostKeyPin,
    Secret,
    StepRun,
    utcnow,
)


def remove_devices(
    session: Session, names: Sequence[str], actor: str, purge_history: bool = False
) -> list[str]:
    """Remove the named devices with their group memberships, host-key pins and client certificates.

    A device with run history (device jobs) is kept unless `purge_history`, and one locked by an active
    run is never removed. Raises UnknownDevice (nothing removed if any name is unknown) or
    InventoryStoreError.
    """
    devices = get_devices(session, list(dict.fromkeys(names)))
    ids = [d.id for d in devices]
    now = utcnow()
    for lock in session.exec(select(DeviceLock).where(col(DeviceLock.device_id).in_(ids))).all():
        expires = lock.expires_at if lock.expires_at.tzinfo else lock.expires_at.replace(tzinfo=now.tzinfo)
        if expires > now:
            name = next(d.name for d in devices if d.id == lock.device_id)
            raise InventoryStoreError(f"device {name} is locked by run {lock.run_id}; wait for it or stop it")
        session.delete(lock)
    jobs = session.exec(select(DeviceJob).where(col(DeviceJob.device_id).in_(ids))).all()
    if jobs and not purge_history:
        with_history = sorted({d.name for d in devices if any(j.device_id == d.id for j in jobs)})
        raise InventoryStoreError(
            f"{', '.join(with_history)} ha{'s' if len(with_history) == 1 else 've'} run history; "
            "remove with --purge-history to delete it too"
        )
    job_ids = [j.id for j in jobs]
    if job_ids:
        for s in session.exec(select(StepRun).where(col(StepRun.job_id).in_(job_ids))).all():
            session.delete(s)
        session.flush()
        for j in jobs:
            session.delete(j)
    for m in session.exec(select(GroupMember).where(col(GroupMember.device_id).in_(ids))).all():
        session.delete(m)
    for pin in session.exec(select(HostKeyPin).where(col(HostKeyPin.device_id).in_(ids))).all():
        session.delete(pin)
    secret_ids: list[str] = []
    for cert in session.exec(
        select(ClientCertificate).where(col(ClientCertificate.device_id).in_(ids))
    ).all():
        secret_ids += [cert.pfx_secret_id, cert.password_secret_id]
        identity = session.exec(select(Secret).where(Secret.name == identity_secret_name(cert))).first()
        if identity is not None:
            session.delete(identity)  # the certificate's alone
        session.delete(cert)
    session.flush()
    # A removed device's PFX and password go with it, unless another certificate still refers to them.
    for sid in dict.fromkeys(secret_ids):
        still_used = session.exec(
            select(ClientCertificate).where(
                (col(ClientCertificate.pfx_secret_id) == sid)
                | (col(ClientCertificate.password_secret_id) == sid)
            )
        ).first()
        secret = session.get(Secret, sid)
        if secret is not None and still_used is None:
            session.delete(secret)
    for d in devices:
        session.delete(d)
    session.flush()
    removed = [d.name for d in devices]
    audit.record(session, actor, "inventory.remove", {"devices": removed, "purge_history": purge_history})
    return removed


def rename_device(session: Session, old: str, new: str, actor: str) -> Device:
    """Rename a device, keeping its id, memberships, history and certificates.

    Raises ValueError for an invalid new name, UnknownDevice for `old`, InventoryStoreError if `new` exists.
    """
    bad = host_name_problem(new)
    if bad:
        raise ValueError(f"new name: {bad}")
    (d,) = get_devices(session, [old])
    if old == new:
        return d
    if session.exec(select(Device).where(Device.name == new)).first() is not None:
        raise InventoryStoreError(f"a device called {new} already exists")
    refuse_case_clashes(session, [new], renaming=old)
    d.name = new
    d.updated_at = utcnow()
    session.add(d)
    session.flush()
    audit.record(session, actor, "inventory.rename", {"device_id": d.id, "old": old, "new": new})
    return d


def record_probe(session: Session, device_id: str, facts: Mapping[str, Any], at: datetime) -> Device:
    """Store what `inventory probe` read from a Mac: merged into its facts (a run's richer facts keep their
    other keys), with the reported host name, architecture and macOS version columns."""
    d = session.get(Device, device_id)
    if d is None:
        raise InventoryStoreError(f"device {device_id} was removed during the probe; probe again")
    try:
        doc = json.loads(d.facts_json) if d.facts_json else {}
    except ValueError:
        doc = {}
    doc = {**(doc if isinstance(doc, dict) else {}), **facts}
    d.facts_json = json.dumps(doc, sort_keys=True)
    d.facts_at = at
    d.reported_hostname = str(facts["hostname"])
    d.arch = facts.get("arch") or d.arch
    d.macos_version = facts.get("macos_version") or d.macos_version
    session.add(d)
    session.flush()
    return d
