"""Importing an inventory file: upsert by host name, group tree and memberships, one audit event."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from inventory import HostEntry, Inventory
from inventory.graph import find_cycle
from orchestrator import audit
from orchestrator.inventory_store.common import InventoryStoreError, names_by_device, refuse_case_clashes
from orchestrator.state.models import Device, Group, GroupChild, GroupMember, utcnow

# The Device columns an import owns; facts and outcomes belong to runs.
_FIELDS = ("address", "port", "user", "auth_ref", "expected_hostname", "vars")


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
    refuse_case_clashes(session, [h.name for h in inv.hosts])
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
    memberships = names_by_device(session, id_to_group)
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
