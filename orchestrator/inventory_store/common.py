"""What the inventory store's modules share: its errors, device lookup by name, group memberships, and the
rule that names are unique ignoring case."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from sqlmodel import Session, col, select

from orchestrator.state.models import Device, Group, GroupMember


class InventoryStoreError(Exception):
    """A request the inventory cannot carry out (a conflict, a device with history, a cycle)."""


class NameCaseClash(InventoryStoreError, ValueError):
    """A new name that differs only in case from a stored one: bad input (exit 2), not a conflict."""


class UnknownDevice(InventoryStoreError, LookupError):
    """Names that are not in the inventory; the message suggests close names."""

    def __init__(self, names: Sequence[str], known: Sequence[str]) -> None:
        self.names = list(names)
        hints = []
        for n in names:
            close = difflib.get_close_matches(n, known, n=3)
            hints.append(f"{n!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        super().__init__(f"unknown device{'s' if len(names) > 1 else ''}: {', '.join(hints)}")


def names_by_device(session: Session, id_to_group: dict[str, str] | None = None) -> dict[str, list[str]]:
    if id_to_group is None:
        id_to_group = {g.id: g.name for g in session.exec(select(Group)).all()}
    out: dict[str, list[str]] = {}
    for m in session.exec(select(GroupMember)).all():
        out.setdefault(m.device_id, []).append(id_to_group[m.group_id])
    for names in out.values():
        names.sort()
    return out


def get_devices(session: Session, names: Sequence[str]) -> list[Device]:
    found = {d.name: d for d in session.exec(select(Device).where(col(Device.name).in_(list(names)))).all()}
    missing = [n for n in names if n not in found]
    if missing:
        known = list(session.exec(select(Device.name)).all())
        raise UnknownDevice(missing, known)
    return [found[n] for n in names]


def refuse_case_clashes(session: Session, names: Sequence[str], renaming: str | None = None) -> None:
    """Names are unique ignoring case across the whole inventory (FORMAT.md), not only within one file: raise
    NameCaseClash naming each new name and the stored device it differs from only in case."""
    stored = {
        n.lower(): n for n in session.exec(select(Device.name)).all() if renaming is None or n != renaming
    }
    clashes = [
        f"{name!r} differs only in case from the device {stored[name.lower()]!r} already in the inventory"
        for name in names
        if name.lower() in stored and stored[name.lower()] != name
    ]
    if clashes:
        raise NameCaseClash(
            "; ".join(clashes) + ": device names are unique ignoring case; use the stored spelling, or "
            "rename the device first (`orchestrate inventory rename`); nothing was imported"
            if renaming is None
            else "; ".join(clashes) + ": device names are unique ignoring case"
        )
