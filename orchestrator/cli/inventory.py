"""`orchestrate inventory`: import, list, show, remove and rename devices.

Thin adapters over `inventory` (parsing) and `orchestrator.inventory_store` (the database). Exit codes:
2 for bad input (a malformed file, an unknown device or group, an empty selection), 1 for anything else
that fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from sqlmodel import Session

from inventory import FORMATS, InventoryError, TargetingError, load_file
from orchestrator import inventory_store as store
from orchestrator.cli import context
from orchestrator.cli.exits import EXIT_BAD_INPUT, EXIT_FAILED
from orchestrator.cli.options import ConcurrencyOpt, GroupOpt, JsonOpt, LimitOpt, targets
from orchestrator.console import Console
from orchestrator.state.db import session_scope

app = typer.Typer(
    no_args_is_help=True, help="The fleet: import inventories, list, show, remove and rename devices."
)

T = TypeVar("T")


@contextmanager
def _errors(console: Console) -> Iterator[None]:
    """Map errors to a message on stderr and the exit code (2: bad input; 1: otherwise)."""
    try:
        yield
    except InventoryError as e:
        for p in e.problems:
            console.error(str(p))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (TargetingError, store.UnknownDevice, ValueError) as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except store.InventoryStoreError as e:
        console.error(str(e))
        raise typer.Exit(EXIT_FAILED) from None


def _in_session(fn: Callable[[Session], T]) -> T:
    with session_scope(context.engine()) as s:
        return fn(s)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="Inventory file: our YAML, CSV, Ansible INI or Ansible YAML.")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", "-f", help=f"Force the format ({' | '.join(FORMATS)}); default: detected."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Add or update devices from FILE (matched by name; ids are kept). Devices not in FILE stay."""
    console = Console(json_mode=json_out)
    with _errors(console):
        if fmt is not None and fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
        inv = load_file(file, fmt)
        actor = context.settings().actor
        report = _in_session(lambda s: store.import_inventory(s, inv, actor, source=str(file), fmt=fmt))
    if json_out:
        console.json(report.to_dict())
        return
    console.success(
        f"{len(report.added)} added, {len(report.changed)} changed, {len(report.unchanged)} unchanged "
        f"({len(inv.hosts)} hosts in {file})"
    )
    if report.added:
        console.info("added: " + ", ".join(report.added))
    for name, fields in report.changed.items():
        console.info(f"changed: {name} ({', '.join(fields)})")
    if report.unchanged:
        console.info("unchanged: " + ", ".join(report.unchanged))
    if report.groups_added:
        console.info("groups added: " + ", ".join(report.groups_added))
    if report.groups_changed:
        console.info("groups changed: " + ", ".join(report.groups_changed))


@app.command("list")
def list_(group: GroupOpt = None, limit: LimitOpt = None, json_out: JsonOpt = False) -> None:
    """List devices (all, or those of --group and --limit)."""
    console = Console(json_mode=json_out)
    groups, limits = targets(group, limit)
    with _errors(console):

        def rows(s: Session) -> list[dict[str, object]]:
            member = store.device_groups(s)
            return [
                store.device_summary(d, member.get(d.id, [])) for d in store.list_devices(s, groups, limits)
            ]

        data = _in_session(rows)
    if json_out:
        console.json(data)
        return
    if not data:
        console.info("no devices (import an inventory with `orchestrate inventory import FILE`)")
        return
    console.table(
        f"{len(data)} device{'s' if len(data) != 1 else ''}",
        ["name", "address:port", "user", "groups", "expected host name", "installed", "last outcome"],
        [
            [
                d["name"],
                _address_port(str(d["address"]), int(str(d["port"]))),
                d["user"] or "",
                ", ".join(d["groups"]) if isinstance(d["groups"], list) else "",
                d["expected_hostname"],
                d["installed_version"] or "",
                d["last_outcome"] or "",
            ]
            for d in data
        ],
    )


def _address_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


@app.command("show")
def show(host: Annotated[str, typer.Argument(help="Device name.")], json_out: JsonOpt = False) -> None:
    """Show one device: inventory fields, groups, variables, facts, live names and last outcome."""
    console = Console(json_mode=json_out)
    with _errors(console):
        data = _in_session(lambda s: store.show_device(s, host).to_dict())
    if json_out:
        console.json(data)
        return
    rows = [
        ["id", data["id"]],
        ["address", _address_port(data["address"], data["port"])],
        ["user", data["user"] or "(default)"],
        ["auth", data["auth"] or "(default)"],
        ["groups", ", ".join(data["groups"])],
        ["all groups", ", ".join(data["all_groups"])],
        ["expected host name", data["expected_hostname"]],
        ["reported host name", data["reported_hostname"] or ""],
        *_name_rows(data.get("names")),
        ["installed version", data["installed_version"] or ""],
        ["last outcome", data["last_outcome"] or ""],
        ["last error", data["last_error"] or ""],
        ["macOS", data["macos_version"] or ""],
        ["arch", data["arch"] or ""],
    ]
    rows += [[f"var {k}", _show_value(v)] for k, v in data["vars"].items()]
    console.table(data["name"], ["field", "value"], rows)


def _show_value(v: object) -> str:
    import json

    # JSON text shows exactly what is stored, newlines and control characters included (escaped).
    return json.dumps(v, ensure_ascii=False)


@app.command("remove")
def remove(
    hosts: Annotated[list[str], typer.Argument(help="Device names.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    purge_history: Annotated[
        bool, typer.Option("--purge-history", help="Also delete the devices' run history.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Remove devices (with their group memberships, host-key pins and certificates)."""
    console = Console(json_mode=json_out)
    if not yes and not typer.confirm(f"Remove {len(hosts)} device(s): {', '.join(hosts)}?", default=False):
        console.error("aborted; nothing removed")
        raise typer.Exit(EXIT_FAILED)
    actor = context.settings().actor
    with _errors(console):
        removed = _in_session(lambda s: store.remove_devices(s, hosts, actor, purge_history=purge_history))
    if json_out:
        console.json({"removed": removed})
        return
    console.success(f"removed {len(removed)}: {', '.join(removed)}")


@app.command("rename")
def rename(
    old: Annotated[str, typer.Argument(help="Current device name.")],
    new: Annotated[str, typer.Argument(help="New device name (its id is kept).")],
    json_out: JsonOpt = False,
) -> None:
    """Rename a device, keeping its id, groups, history and certificates."""
    console = Console(json_mode=json_out)
    actor = context.settings().actor
    with _errors(console):
        d = _in_session(lambda s: store.rename_device(s, old, new, actor))
    if json_out:
        console.json({"id": d.id, "old": old, "new": d.name})
        return
    console.success(f"renamed {old} → {d.name} (id {d.id})")
    if d.expected_hostname is None:
        console.warning(f"{d.name} has no expected_hostname: its certificate must now match {d.name!r}")


@app.command("probe")
def probe(
    group: GroupOpt = None,
    limit: LimitOpt = None,
    concurrency: ConcurrencyOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Read each targeted Mac's names (hostname, LocalHostName, HostName, ComputerName), macOS version and
    architecture: one read-only exec per Mac, in parallel, and store them. Exit 1 when a Mac could not be
    read (the others are stored)."""
    from orchestrator.cli.inventory_probe import run_probe

    console = Console(json_mode=json_out)
    groups, limits = targets(group, limit)
    with _errors(console):
        code = run_probe(console, groups, limits, concurrency)
    raise typer.Exit(code)


def _name_rows(names: dict[str, str | None] | None) -> list[list[str]]:
    """The Mac's live names (from `inventory probe` or a run's facts), when it reported them."""
    if names is None:
        return [["live names", "(not probed: orchestrate inventory probe)"]]
    return [
        ["Sharing-pane name", names["sharing_name"] or ""],
        ["LocalHostName", names["local_host_name"] or ""],
        ["HostName", names["host_name"] or "(not set)"],
        ["ComputerName", names["computer_name"] or ""],
    ]
