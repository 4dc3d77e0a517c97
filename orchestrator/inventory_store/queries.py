"""Reading the inventory: device lists and target resolution, one device's detail, the group tree, and a
device's live names."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from inventory import select as select_targets
from inventory.graph import descendants
from orchestrator.certs.names import live_names
from orchestrator.inventory_store.common import get_devices, names_by_device
from orchestrator.state.models import Device, Group, GroupChild


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
    return names_by_device(session)


@dataclass(frozen=True)
class _Rec:
    name: str
    groups: tuple[str, ...]
    device: Device


def _select(
    session: Session, groups: Sequence[str], limits: Sequence[str], require_nonempty: bool
) -> list[Device]:
    devices = session.exec(select(Device).order_by(col(Device.name))).all()
    member = names_by_device(session)
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


def show_device(session: Session, name: str) -> DeviceDetail:
    """The device called `name` with its groups; raises UnknownDevice (with suggestions)."""
    (d,) = get_devices(session, [name])
    direct = names_by_device(session).get(d.id, [])
    tree = group_tree(session)
    parents: dict[str, set[str]] = {}
    for p, kids in tree.items():
        for k in kids:
            parents.setdefault(k, set()).add(p)
    every: set[str] = set().union(*(descendants(g, parents) for g in direct))  # each group and its parents
    return DeviceDetail(d, direct, sorted(every))


def live_names_json(d: Device) -> dict[str, Any] | None:
    """The Mac's names from its stored facts (hostname, LocalHostName, HostName, ComputerName and the
    Sharing-pane name LocalHostName.local), None when it never reported them."""
    names = live_names(d)
    return names.as_json() if names is not None else None
