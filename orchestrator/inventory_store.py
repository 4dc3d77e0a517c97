"""The inventory in the database: import (upsert by name), list, show, remove, rename, and target resolution.

Every later command resolves its devices with `resolve_targets(session, groups, limits)`. Each mutating
function writes an audit event (names and changed field names only: never a variable value or a secret).
A device's `id` is stable: re-imports update the row in place and `rename_device` keeps it.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from inventory import HostEntry, Inventory, TargetingError
from inventory import select as select_targets
from inventory.graph import find_cycle
from inventory.names import host_name_problem
from orchestrator import audit
from orchestrator.certs.store import identity_secret_name
from orchestrator.state.models import (
    ClientCertificate,
    Device,
    DeviceJob,
    DeviceLock,
    Group,
    GroupChild,
    GroupMember,
    HostKeyPin,
    Secret,
    StepRun,
    utcnow,
)
from tasks.hostnames import MacNames

__all__ = [
    "DeviceDetail",
    "ImportReport",
    "InventoryStoreError",
    "TargetingError",
    "UnknownDevice",
    "device_groups",
    "device_summary",
    "group_tree",
    "import_inventory",
    "list_devices",
    "live_names_json",
    "record_probe",
    "remove_devices",
    "rename_device",
    "resolve_targets",
    "show_device",
]

# The Device columns an import owns; facts and outcomes belong to runs.
_FIELDS = ("address", "port", "user", "auth_ref", "expected_hostname", "vars")


class InventoryStoreError(Exception):
    """A request the inventory cannot carry out (a conflict, a device with history, a cycle)."""


class UnknownDevice(InventoryStoreError, LookupError):
    """Names that are not in the inventory; the message suggests close names."""

    def __init__(self, names: Sequence[str], known: Sequence[str]) -> None:
        self.names = list(names)
        hints = []
        for n in names:
            close = difflib.get_close_matches(n, known, n=3)
            hints.append(f"{n!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        super().__init__(f"unknown device{'s' if len(names) > 1 else ''}: {', '.join(hints)}")


@dataclass
class ImportReport:
    """What an import did: hosts added, changed (with the changed field names), unchanged; groups too."""

    added: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    groups_added: list[str] = field(default_factory=list)
    groups_changed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "added": self.added,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "groups_added": self.groups_added,
            "groups_changed": self.groups_changed,
        }


@dataclass
class DeviceDetail:
    """One device with its groups (direct, and all including parents through the group tree)."""

    device: Device
    groups: list[str]
    all_groups: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: inventory fields, facts and last outcome (no secret: auth is a reference)."""
        d = self.device
        out = device_summary(d, self.groups)
        out.update(
            {
                "all_groups": self.all_groups,
                "reported_hostname": d.reported_hostname,
                "target_hostname": d.target_hostname,
                "vars": json.loads(d.vars_json),
                "arch": d.arch,
                "macos_version": d.macos_version,
                "connected": d.connected,
                "facts_at": d.facts_at.isoformat() if d.facts_at else None,
                "names": live_names_json(d),
                "last_run_id": d.last_run_id,
                "last_error": d.last_error,
                "created_at": d.created_at.isoformat() if d.created_at else None,
                "updated_at": d.updated_at.isoformat() if d.updated_at else None,
            }
        )
        return out


def device_summary(d: Device, groups: Sequence[str]) -> dict[str, Any]:
    """The list-row fields of a device as a JSON-ready dict."""
    return {
        "id": d.id,
        "name": d.name,
        "address": d.address,
        "port": d.port,
        "user": d.user,
        "auth": d.auth_ref,
        "groups": list(groups),
        "expected_hostname": d.expected_hostname or d.name,
        "installed_version": d.installed_version,
        "last_outcome": d.last_outcome,
    }


def _vars_json(host: HostEntry) -> str:
    # Sorted keys make equal vars compare equal as text; ensure_ascii keeps any text storable byte-exact.
    return json.dumps(dict(host.vars), sort_keys=True, ensure_ascii=True)


def _wanted(host: HostEntry) -> dict[str, Any]:
    return {
        "address": host.address,
        "port": host.port,
        "user": host.user,
        "auth_ref": host.auth.to_ref() if host.auth else None,
        "expected_hostname": host.expected_hostname,
        "vars": _vars_json(host),
    }


def _current(d: Device) -> dict[str, Any]:
    return {
        "address": d.address,
        "port": d.port,
        "user": d.user,
        "auth_ref": d.auth_ref,
        "expected_hostname": d.expected_hostname,
        "vars": d.vars_json,
    }


def import_inventory(
    session: Session, inv: Inventory, actor: str, source: str | None = None, fmt: str | None = None
) -> ImportReport:
    """Upsert `inv` by host name: new hosts are added, existing rows are updated in place (their id stays).

    A host's direct group memberships become exactly those in the file; groups the file declares get
    exactly its children and vars; groups it only mentions are created when missing and left as they are.
    Devices absent from the file are kept. Raises InventoryStoreError when the merged group tree would have
    a cycle (nothing is written: the caller's transaction rolls back).
    """
    report = ImportReport()
    _refuse_case_clashes(session, [h.name for h in inv.hosts])
    groups = {g.name: g for g in session.exec(select(Group)).all()}
    for name in inv.group_names():
        if name not in groups:
            groups[name] = Group(name=name)
            session.add(groups[name])
            report.groups_added.append(name)
    for ge in inv.groups:
        g = groups[ge.name]
        new_vars = json.dumps(dict(ge.vars), sort_keys=True, ensure_ascii=True)
        if g.vars_json != new_vars:
            g.vars_json = new_vars
            if ge.name not in report.groups_added:
                report.groups_changed.append(ge.name)
    session.flush()

    id_to_group = {g.id: g.name for g in groups.values()}
    edges = session.exec(select(GroupChild)).all()
    children: dict[str, set[str]] = {name: set() for name in groups}
    for e in edges:
        children[id_to_group[e.parent_id]].add(id_to_group[e.child_id])
    for ge in inv.groups:
        want_children = set(ge.children)
        if children[ge.name] == want_children:
            continue
        for e in edges:
            if id_to_group[e.parent_id] == ge.name:
                session.delete(e)
        for c in ge.children:
            session.add(GroupChild(parent_id=groups[ge.name].id, child_id=groups[c].id))
        children[ge.name] = want_children
        if ge.name not in report.groups_added and ge.name not in report.groups_changed:
            report.groups_changed.append(ge.name)
    cycle = find_cycle(children)
    if cycle:
        raise InventoryStoreError("this import would make a group cycle: " + " → ".join(cycle))

    devices = {d.name: d for d in session.exec(select(Device)).all()}
    memberships = _memberships(session, id_to_group)
    for host in inv.hosts:
        want = _wanted(host)
        d = devices.get(host.name)
        if d is None:
            d = Device(
                name=host.name,
                address=want["address"],
                port=want["port"],
                user=want["user"],
                auth_ref=want["auth_ref"],
                expected_hostname=want["expected_hostname"],
                vars_json=want["vars"],
            )
            session.add(d)
            devices[host.name] = d
            report.added.append(host.name)
            continue
        have = _current(d)
        diff = [f for f in _FIELDS if have[f] != want[f]]
        if set(memberships.get(d.id, [])) != set(host.groups):
            diff.append("groups")
        if diff:
            d.address, d.port, d.user = want["address"], want["port"], want["user"]
            d.auth_ref, d.expected_hostname, d.vars_json = (
                want["auth_ref"],
                want["expected_hostname"],
                want["vars"],
            )
            d.updated_at = utcnow()
            report.changed[host.name] = diff
        else:
            report.unchanged.append(host.name)
    session.flush()

    by_device: dict[str, list[GroupMember]] = {}
    for m in session.exec(select(GroupMember)).all():
        by_device.setdefault(m.device_id, []).append(m)
    unchanged = set(report.unchanged)
    for host in inv.hosts:
        d = devices[host.name]
        if host.name in unchanged:
            continue
        for m in by_device.get(d.id, []):
            if id_to_group.get(m.group_id) not in host.groups:
                session.delete(m)
        have_groups = set(memberships.get(d.id, []))
        for gname in host.groups:
            if gname not in have_groups:
                session.add(GroupMember(group_id=groups[gname].id, device_id=d.id))
    session.flush()
    audit.record(
        session,
        actor,
        "inventory.import",
        {
            "source": source,
            "format": fmt,
            "added": report.added,
            "changed": report.changed,
            "unchanged": len(report.unchanged),
            "groups_added": report.groups_added,
            "groups_changed": report.groups_changed,
        },
    )
    return report


def _memberships(session: Session, id_to_group: dict[str, str] | None = None) -> dict[str, list[str]]:
    if id_to_group is None:
        id_to_group = {g.id: g.name for g in session.exec(select(Group)).all()}
    out: dict[str, list[str]] = {}
    for m in session.exec(select(GroupMember)).all():
        out.setdefault(m.device_id, []).append(id_to_group[m.group_id])
    for names in out.values():
        names.sort()
    return out


def group_tree(session: Session) -> dict[str, list[str]]:
    """Every group name → its direct child group names (sorted)."""
    groups = {g.id: g.name for g in session.exec(select(Group)).all()}
    tree: dict[str, list[str]] = {name: [] for name in groups.values()}
    for e in session.exec(select(GroupChild)).all():
        tree[groups[e.parent_id]].append(groups[e.child_id])
    for kids in tree.values():
        kids.sort()
    return tree


def device_groups(session: Session) -> dict[str, list[str]]:
    """Device id → the names of the groups it belongs to directly (sorted)."""
    return _memberships(session)


@dataclass(frozen=True)
class _Rec:
    name: str
    groups: tuple[str, ...]
    device: Device


def _select(
    session: Session, groups: Sequence[str], limits: Sequence[str], require_nonempty: bool
) -> list[Device]:
    devices = session.exec(select(Device).order_by(col(Device.name))).all()
    member = _memberships(session)
    recs = [_Rec(d.name, tuple(member.get(d.id, [])), d) for d in devices]
    tree = group_tree(session)
    return [r.device for r in select_targets(recs, groups, limits, tree, require_nonempty).items]


def list_devices(session: Session, groups: Sequence[str] = (), limits: Sequence[str] = ()) -> list[Device]:
    """Devices by name, filtered by `--group` (with child groups) and `--limit` patterns.

    With no filter every device is returned (possibly none). With a filter, raises TargetingError for an
    unknown group or when nothing matches.
    """
    return _select(session, groups, limits, require_nonempty=bool(groups or limits))


def resolve_targets(session: Session, groups: Sequence[str] = (), limits: Sequence[str] = ()) -> list[Device]:
    """The devices a command acts on (by name); raises TargetingError if a group is unknown or none is
    selected (an empty inventory included)."""
    return _select(session, groups, limits, require_nonempty=True)


def _get(session: Session, names: Sequence[str]) -> list[Device]:
    found = {d.name: d for d in session.exec(select(Device).where(col(Device.name).in_(list(names)))).all()}
    missing = [n for n in names if n not in found]
    if missing:
        known = list(session.exec(select(Device.name)).all())
        raise UnknownDevice(missing, known)
    return [found[n] for n in names]


def show_device(session: Session, name: str) -> DeviceDetail:
    """The device called `name` with its groups; raises UnknownDevice (with suggestions)."""
    (d,) = _get(session, [name])
    direct = _memberships(session).get(d.id, [])
    tree = group_tree(session)
    parents: dict[str, set[str]] = {}
    for p, kids in tree.items():
        for k in kids:
            parents.setdefault(k, set()).add(p)
    every: set[str] = set()
    todo = list(direct)
    while todo:
        g = todo.pop()
        if g not in every:
            every.add(g)
            todo.extend(parents.get(g, ()))
    return DeviceDetail(d, direct, sorted(every))


def remove_devices(
    session: Session, names: Sequence[str], actor: str, purge_history: bool = False
) -> list[str]:
    """Remove the named devices with their group memberships, host-key pins and client certificates.

    A device with run history (device jobs) is kept unless `purge_history`, and one locked by an active
    run is never removed. Raises UnknownDevice (nothing removed if any name is unknown) or
    InventoryStoreError.
    """
    devices = _get(session, list(dict.fromkeys(names)))
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


def _refuse_case_clashes(session: Session, names: Sequence[str], renaming: str | None = None) -> None:
    """Names are unique ignoring case across the whole inventory (FORMAT.md), not only within one file: raise
    InventoryStoreError naming each new name and the stored device it differs from only in case."""
    stored = {
        n.lower(): n for n in session.exec(select(Device.name)).all() if renaming is None or n != renaming
    }
    clashes = [
        f"{name!r} differs only in case from the device {stored[name.lower()]!r} already in the inventory"
        for name in names
        if name.lower() in stored and stored[name.lower()] != name
    ]
    if clashes:
        raise InventoryStoreError(
            "; ".join(clashes) + ": device names are unique ignoring case; use the stored spelling, or "
            "rename the device first (`orchestrate inventory rename`); nothing was imported"
            if renaming is None
            else "; ".join(clashes) + ": device names are unique ignoring case"
        )


def rename_device(session: Session, old: str, new: str, actor: str) -> Device:
    """Rename a device, keeping its id, memberships, history and certificates.

    Raises ValueError for an invalid new name, UnknownDevice for `old`, InventoryStoreError if `new` exists.
    """
    bad = host_name_problem(new)
    if bad:
        raise ValueError(f"new name: {bad}")
    (d,) = _get(session, [old])
    if old == new:
        return d
    if session.exec(select(Device).where(Device.name == new)).first() is not None:
        raise InventoryStoreError(f"a device called {new} already exists")
    _refuse_case_clashes(session, [new], renaming=old)
    d.name = new
    d.updated_at = utcnow()
    session.add(d)
    session.flush()
    audit.record(session, actor, "inventory.rename", {"device_id": d.id, "old": old, "new": new})
    return d


# ---------------------------------------------------------------- live names (`inventory probe`)


def live_names_json(d: Device) -> dict[str, Any] | None:
    """The Mac's names from its stored facts (hostname, LocalHostName, HostName, ComputerName and the
    Sharing-pane name LocalHostName.local), None when it never reported them."""
    try:
        doc = json.loads(d.facts_json) if d.facts_json else None
    except ValueError:
        return None
    names = MacNames.from_facts(doc) if isinstance(doc, dict) else None
    return names.as_json() if names is not None else None


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
