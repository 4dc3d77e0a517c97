"""The inventory in the database (SQLite and PostgreSQL): upsert, stable ids, groups, targeting, show,
remove, rename and the audit trail."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from inventory import Inventory, TargetingError, loads
from orchestrator import inventory_store as store
from orchestrator.state.db import session_scope
from orchestrator.state.models import (
    AuditEvent,
    Device,
    DeviceJob,
    DeviceLock,
    Group,
    GroupChild,
    GroupMember,
    Run,
    StepRun,
    utcnow,
)

HOSTILE = {
    "semicolon": "x; rm -rf /",
    "subst": "$(id)",
    "backtick": "`reboot`",
    "newline": "line1\nline2\r\n",
    "unicode": "ünï ☃ \u2028 \x85",
    "nul": "a\x00b",
    "quotes": "'\"\\",
}

BASE = """
hosts:
  - {name: mac01, address: 10.0.0.1, groups: [lab-a], vars: {site: paris}}
  - {name: mac02, address: 10.0.0.2, groups: [lab-b]}
  - {name: kiosk1, address: 10.0.1.1, groups: [kiosk], user: admin}
groups:
  lab: {children: [lab-a, lab-b]}
  lab-a:
  lab-b:
"""


def _inv(text: str) -> Inventory:
    return loads(text, "test.yaml", "yaml")


def _import(engine: Engine, text: str) -> store.ImportReport:
    with session_scope(engine) as s:
        return store.import_inventory(s, _inv(text), "tester", source="test.yaml", fmt="yaml")


def _ids(engine: Engine) -> dict[str, str]:
    with Session(engine) as s:
        return {d.name: d.id for d in s.exec(select(Device)).all()}


def test_import_then_reimport_is_unchanged_and_ids_stay(engine: Engine) -> None:
    r1 = _import(engine, BASE)
    assert r1.added == ["mac01", "mac02", "kiosk1"]
    assert sorted(r1.groups_added) == ["kiosk", "lab", "lab-a", "lab-b"]
    ids = _ids(engine)
    r2 = _import(engine, BASE)
    assert (r2.added, r2.changed, r2.unchanged) == ([], {}, ["mac01", "mac02", "kiosk1"])
    assert (r2.groups_added, r2.groups_changed) == ([], [])
    assert _ids(engine) == ids


def test_changes_name_the_fields_and_keep_the_id(engine: Engine) -> None:
    _import(engine, BASE)
    ids = _ids(engine)
    changed = BASE.replace(
        "address: 10.0.0.1, groups: [lab-a], vars: {site: paris}",
        "address: 10.0.0.9, port: 2222, groups: [lab-b], vars: {site: lyon}",
    )
    r = _import(engine, changed)
    assert r.changed == {"mac01": ["address", "port", "vars", "groups"]}
    assert r.unchanged == ["mac02", "kiosk1"]
    assert _ids(engine) == ids
    with Session(engine) as s:
        d = s.exec(select(Device).where(Device.name == "mac01")).one()
        assert (d.address, d.port, json.loads(d.vars_json)) == ("10.0.0.9", 2222, {"site": "lyon"})
        assert store.device_groups(s)[d.id] == ["lab-b"]


def test_devices_absent_from_a_file_are_kept(engine: Engine) -> None:
    _import(engine, BASE)
    r = _import(engine, "hosts:\n  - {name: new1}\n")
    assert r.added == ["new1"]
    with Session(engine) as s:
        assert len(store.list_devices(s)) == 4


def test_implicit_groups_keep_their_children_declared_ones_are_replaced(engine: Engine) -> None:
    _import(engine, BASE)
    # A file that only mentions lab (through a host) must not wipe lab's children.
    _import(engine, "hosts:\n  - {name: mac09, groups: [lab]}\n")
    with Session(engine) as s:
        assert store.group_tree(s)["lab"] == ["lab-a", "lab-b"]
    r = _import(engine, "groups:\n  lab: {children: [lab-a], vars: {x: 1}}\n  lab-a:\n")
    assert r.groups_changed == ["lab"]
    with Session(engine) as s:
        assert store.group_tree(s)["lab"] == ["lab-a"]
        assert json.loads(s.exec(select(Group).where(Group.name == "lab")).one().vars_json) == {"x": 1}


def test_a_cycle_across_imports_is_refused_and_nothing_is_written(engine: Engine) -> None:
    _import(engine, BASE)
    with pytest.raises(store.InventoryStoreError, match="group cycle: lab → lab-a → lab"):
        # lab is only mentioned (so it keeps its children lab-a, lab-b); lab-a gets lab as a child.
        _import(engine, "hosts:\n  - {name: mac77, groups: [lab]}\ngroups:\n  lab-a: {children: [lab]}\n")
    with Session(engine) as s:
        assert s.exec(select(Device).where(Device.name == "mac77")).first() is None
        assert store.group_tree(s)["lab"] == ["lab-a", "lab-b"]
        assert len(s.exec(select(GroupChild)).all()) == 2


def test_list_and_resolve_targets(engine: Engine) -> None:
    with Session(engine) as s:
        assert store.list_devices(s) == []
        with pytest.raises(TargetingError, match="the inventory is empty"):
            store.resolve_targets(s)
    _import(engine, BASE)
    with Session(engine) as s:
        assert [d.name for d in store.list_devices(s)] == ["kiosk1", "mac01", "mac02"]
        assert [d.name for d in store.resolve_targets(s, ["lab"])] == ["mac01", "mac02"]
        assert [d.name for d in store.resolve_targets(s, ["lab"], ["!mac02"])] == ["mac01"]
        assert [d.name for d in store.resolve_targets(s, [], ["k*,mac02"])] == ["kiosk1", "mac02"]
        with pytest.raises(
            TargetingError, match=r"unknown group 'labs' \(known groups: kiosk, lab, lab-a, lab-b\)"
        ):
            store.list_devices(s, ["labs"])
        with pytest.raises(TargetingError, match="no device matches --group kiosk"):
            store.resolve_targets(s, ["kiosk"], ["mac*"])


def test_show_device_groups_and_unknown_names(engine: Engine) -> None:
    _import(engine, BASE)
    with Session(engine) as s:
        detail = store.show_device(s, "mac01")
        assert (detail.groups, detail.all_groups) == (["lab-a"], ["lab", "lab-a"])
        data = detail.to_dict()
        assert data["expected_hostname"] == "mac01" and data["target_hostname"] == "mac01"
        assert data["vars"] == {"site": "paris"}
        with pytest.raises(store.UnknownDevice, match=r"unknown device: 'mac1' \(did you mean mac01"):
            store.show_device(s, "mac1")


def test_hostile_values_round_trip_through_the_database(engine: Engine) -> None:
    from inventory import HostEntry

    inv = Inventory((HostEntry("mac01", "mac01", vars=HOSTILE),))
    with session_scope(engine) as s:
        store.import_inventory(s, inv, "tester")
    with Session(engine) as s:
        got = store.show_device(s, "mac01").to_dict()["vars"]
    assert got == HOSTILE
    assert all(got[k].encode() == v.encode() for k, v in HOSTILE.items())
    with session_scope(engine) as s:
        assert store.import_inventory(s, inv, "tester").unchanged == ["mac01"]


def test_audit_events_never_hold_variable_values(engine: Engine) -> None:
    _import(engine, BASE.replace("site: paris", "token: canary-7f3a"))
    with session_scope(engine) as s:
        store.rename_device(s, "mac02", "mac03", "tester")
        store.remove_devices(s, ["kiosk1"], "tester")
    with Session(engine) as s:
        events = s.exec(select(AuditEvent)).all()
    assert [e.action for e in events][-3:] == ["inventory.import", "inventory.rename", "inventory.remove"]
    assert all(e.actor == "tester" for e in events)
    assert not any("canary-7f3a" in e.params_json for e in events)
    assert json.loads(events[-1].params_json)["devices"] == ["kiosk1"]


def test_rename_keeps_id_groups_and_checks_the_new_name(engine: Engine) -> None:
    _import(engine, BASE)
    ids = _ids(engine)
    with session_scope(engine) as s:
        d = store.rename_device(s, "mac01", "mac01-new", "tester")
    assert d.id == ids["mac01"]
    with Session(engine) as s:
        assert store.show_device(s, "mac01-new").groups == ["lab-a"]
    with session_scope(engine) as s:
        with pytest.raises(store.InventoryStoreError, match="a device called mac02 already exists"):
            store.rename_device(s, "mac01-new", "mac02", "tester")
    with session_scope(engine) as s:
        with pytest.raises(ValueError, match="new name: 'bad name' is not a valid host name"):
            store.rename_device(s, "mac01-new", "bad name", "tester")
    # A re-import under the old name is a new device; the renamed one keeps its id.
    r = _import(engine, BASE)
    assert r.added == ["mac01"]
    assert _ids(engine)["mac01-new"] == ids["mac01"]


def test_remove_unknown_removes_nothing(engine: Engine) -> None:
    _import(engine, BASE)
    with session_scope(engine) as s, pytest.raises(store.UnknownDevice, match="'nope'"):
        store.remove_devices(s, ["mac01", "nope"], "tester")
    assert "mac01" in _ids(engine)


def _add_history(engine: Engine, name: str, lock_for: timedelta | None = None) -> None:
    with session_scope(engine) as s:
        d = s.exec(select(Device).where(Device.name == name)).one()
        run = Run(kind="install")
        s.add(run)
        s.flush()
        job = DeviceJob(run_id=run.id, device_id=d.id)
        s.add(job)
        s.flush()
        s.add(StepRun(job_id=job.id, step="gather"))
        if lock_for is not None:
            s.add(DeviceLock(device_id=d.id, run_id=run.id, owner="w1", expires_at=utcnow() + lock_for))


def test_remove_with_history_needs_purge(engine: Engine) -> None:
    _import(engine, BASE)
    _add_history(engine, "mac01")
    with session_scope(engine) as s, pytest.raises(store.InventoryStoreError, match="mac01 has run history"):
        store.remove_devices(s, ["mac01"], "tester")
    with session_scope(engine) as s:
        assert store.remove_devices(s, ["mac01", "mac02"], "tester", purge_history=True) == ["mac01", "mac02"]
    with Session(engine) as s:
        assert s.exec(select(DeviceJob)).all() == []
        assert s.exec(select(StepRun)).all() == []
        assert len(s.exec(select(GroupMember)).all()) == 1  # kiosk1's
    assert sorted(_ids(engine)) == ["kiosk1"]


def test_a_locked_device_is_not_removed(engine: Engine) -> None:
    _import(engine, BASE)
    _add_history(engine, "mac02", lock_for=timedelta(minutes=5))
    with session_scope(engine) as s, pytest.raises(store.InventoryStoreError, match="mac02 is locked by run"):
        store.remove_devices(s, ["mac02"], "tester", purge_history=True)
    assert "mac02" in _ids(engine)
