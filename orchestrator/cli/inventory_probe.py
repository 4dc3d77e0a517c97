"""`orchestrate inventory probe`: read each targeted Mac's names, macOS version and architecture, live.

One read-only exec per Mac (no root, nothing changes), many Macs at once ([ssh] concurrency or
--concurrency), progress shown as a deploy's is. What each Mac said is stored with the device (its facts,
reported host name, arch and macOS version): `certs add` maps PFXs by these live names and `certs check`
judges against them. A Mac that cannot be read is reported with its error and left as it was; exit 1.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from orchestrator import audit
from orchestrator import inventory_store as store
from orchestrator.cli import context, remote
from orchestrator.cli.exits import EXIT_FAILED
from orchestrator.console import Console
from orchestrator.live import RunDisplay
from orchestrator.state.db import session_scope
from orchestrator.state.models import utcnow


def run_probe(
    console: Console, groups: list[str], limits: list[str], concurrency: int | None
) -> int:
    """Probe, store, render; the exit code (0 all read, 1 some could not be read). Raises TargetingError
    or UnknownDevice for a bad selection (the caller maps them to exit 2)."""
    settings = context.settings()
    engine = context.engine()
    with session_scope(engine) as s:
        devices = store.resolve_targets(s, groups, limits)
        s.expunge_all()
    display = None if console.json_mode else RunDisplay(console.out, len(devices), title="probe")
    with display or nullcontext():
        results = remote.probe(devices, concurrency, display.on_event if display else None)
    now = utcnow()
    rows: list[dict[str, Any]] = []
    with session_scope(engine) as s:
        for r in results:
            row: dict[str, Any] = {"device": r.name, "ok": r.facts is not None, "execs": r.execs}
            if r.facts is not None:
                store.record_probe(s, r.device_id, r.facts.as_json(), now)
                row.update(r.facts.as_json(), sharing_name=r.facts.names.sharing)
            else:
                row.update(error_type=r.error_type, error=r.message)
            rows.append(row)
        failed = [r["device"] for r in rows if not r["ok"]]
        audit.record(
            s,
            settings.actor,
            "inventory.probe",
            {"groups": groups, "limits": limits, "devices": len(rows), "failed": failed},
            "ok" if not failed else "partial",
        )
    if console.json_mode:
        console.json(rows)
    else:
        _render(console, rows)
    return EXIT_FAILED if failed else 0


def _render(console: Console, rows: list[dict[str, Any]]) -> None:
    read = [r for r in rows if r["ok"]]
    if read:
        console.table(
            f"names of {len(read)} Mac{'s' if len(read) != 1 else ''} (as each reported them now)",
            ["device", "Sharing-pane name", "hostname", "HostName", "ComputerName", "macOS", "arch"],
            [
                [
                    r["device"], r["sharing_name"] or "", r["hostname"], r["host_name"] or "(not set)",
                    r["computer_name"] or "", r["macos_version"], r["arch"],
                ]
                for r in read
            ],
        )  # fmt: skip
    for r in rows:
        if not r["ok"]:
            console.error(f"{r['device']}: not probed ({r['error_type']}): {r['error']}")
    bad = sum(1 for r in rows if not r["ok"])
    if bad:
        console.error(f"{bad} of {len(rows)} device(s) could not be read; their stored names are unchanged")
    elif rows:
        console.success(f"{len(rows)} device(s) probed; names stored (see `orchestrate certs check`)")
