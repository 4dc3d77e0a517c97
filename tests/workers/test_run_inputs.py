"""The run's shared inputs: the CAs our runs trusted, read once for the whole fleet (not once per device,
which made an uninstall of N Macs read N x 2N audit rows)."""

from __future__ import annotations

import json

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from orchestrator.state.models import AuditEvent, Device, Run
from workers.runner.inputs import CA_ADDED, load_run_inputs


def _trusted(device_id: str, sha1: str) -> AuditEvent:
    doc = {"device_id": device_id, "run_id": "r", "sha256": "0" * 64, "sha1": sha1}
    return AuditEvent(actor="runner", action=CA_ADDED, params_json=json.dumps(doc))


def test_an_uninstall_run_reads_every_devices_added_cas_in_one_query(engine: Engine) -> None:
    with Session(engine) as s:
        a, b = Device(name="mac-a", address="127.0.0.1"), Device(name="mac-b", address="127.0.0.1")
        s.add_all([a, b])
        s.flush()
        s.add_all([_trusted(a.id, "AA11"), _trusted(b.id, "bb22"), _trusted(a.id, "cc33"),
                   _trusted(a.id, "aa11"),  # the same CA again (a re-run): once
                   AuditEvent(actor="cli", action="secret.set", params_json=json.dumps({"device_id": a.id}))])
        uninstall, install = Run(kind="uninstall"), Run(kind="install")
        s.add_all([uninstall, install])
        s.commit()
        ids = a.id, b.id, uninstall.id, install.id
    a_id, b_id, uninstall_id, install_id = ids

    audit_reads: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "auditevent" in statement.lower():
            audit_reads.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with Session(engine) as s:
            inputs = load_run_inputs(s, uninstall_id)
            plain = load_run_inputs(s, install_id)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert inputs.cas_added == {a_id: ("aa11", "cc33"), b_id: ("bb22",)}
    assert len(audit_reads) == 1  # one read for the fleet
    assert plain.cas_added == {}  # an install does not read the audit trail at all
