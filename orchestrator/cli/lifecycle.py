"""`orchestrate uninstall|reconfigure|start|stop|restart|converge|logs`: the client's life after install.

Each plans a run (recorded like deploy's: `runs show`, `runs resume`) and drives it under the live display;
`logs` only reads, records nothing, and prints the client's log tail of one Mac.
Exit codes: 0 all devices succeeded; 1 a device failed or was refused; 2 bad input; 3 none failed but one
is unverified (running, Switch connection not confirmed); 130 Ctrl-C.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from orchestrator.cli import context, remote
from orchestrator.cli.dispatch import drive_run, print_refused
from orchestrator.cli.exits import EXIT_BAD_INPUT, EXIT_FAILED
from orchestrator.cli.options import ConcurrencyOpt, GroupOpt, JsonOpt, LimitOpt, TrustOpt, targets
from orchestrator.console import Console
from orchestrator.inventory_store import resolve_targets
from orchestrator.planning.plans import plan_converge_run, plan_lifecycle_run
from orchestrator.planning.request import DeployRequest, PlanningError
from orchestrator.state.db import session_scope


def _run(
    kind: str, group: list[str] | None, limit: list[str] | None, params: dict[str, Any],
    concurrency: int | None, json_out: bool, what: str,
) -> None:  # fmt: skip
    console = Console(json_mode=json_out)
    groups, limits = targets(group, limit)
    if not groups and not limits:
        console.error(f"say which Macs to {what}: --group G and/or --limit PATTERN")
        raise typer.Exit(EXIT_BAD_INPUT)
    settings = context.settings()
    try:
        with session_scope(context.engine()) as s:
            plan = plan_lifecycle_run(s, settings, kind, groups, limits, params, settings.actor)
    except PlanningError as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    print_refused(console, plan.refused)
    assert plan.run_id is not None
    console.info(f"run {plan.run_id}: {what} on {len(plan.device_ids)} device(s)")
    raise typer.Exit(drive_run(console, plan.run_id, len(plan.device_ids), concurrency))


def uninstall(
    group: GroupOpt = None,
    limit: LimitOpt = None,
    remove_identity: Annotated[
        bool, typer.Option("--remove-identity", help="Also delete the client identity.")
    ] = False,
    remove_ca: Annotated[
        bool, typer.Option("--remove-ca", help="Also remove CAs OUR runs trusted (never others).")
    ] = False,
    dmg: Annotated[
        str | None,
        typer.Option("--dmg", help="Run uninstall.sh from this version's DMG (default: pkgutil's list)."),
    ] = None,
    concurrency: ConcurrencyOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Stop and remove the 1E Client; verify nothing is left."""
    params = {"remove_identity": remove_identity, "remove_ca": remove_ca, "dmg_version": dmg}
    _run("uninstall", group, limit, params, concurrency, json_out, "uninstall the 1E Client")


def reconfigure(
    settings_: Annotated[
        list[str], typer.Argument(metavar="KEY=VALUE...", help="e.g. SWITCH=sw.example.com:4000")
    ],
    group: GroupOpt = None,
    limit: LimitOpt = None,
    concurrency: ConcurrencyOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Change the client's configuration with 1E.Client.updateconf.sh, restart it and verify it connects."""
    pairs = []
    for item in settings_:
        key, sep, value = item.partition("=")
        if not sep or not key:
            Console(json_mode=json_out).error(f"{item!r} is not KEY=VALUE (e.g. SWITCH=sw.example.com:4000)")
            raise typer.Exit(EXIT_BAD_INPUT)
        pairs.append([key, value])
    _run("reconfigure", group, limit, {"pairs": pairs}, concurrency, json_out, "reconfigure the client")


def start(group: GroupOpt = None, limit: LimitOpt = None, concurrency: ConcurrencyOpt = None,
          json_out: JsonOpt = False) -> None:  # fmt: skip
    """Start the client daemon where it is not running (and verify it connects)."""
    _run("start", group, limit, {}, concurrency, json_out, "start the client")


def stop(group: GroupOpt = None, limit: LimitOpt = None, concurrency: ConcurrencyOpt = None,
         json_out: JsonOpt = False) -> None:  # fmt: skip
    """Stop the client daemon (until the next start or reboot)."""
    _run("stop", group, limit, {}, concurrency, json_out, "stop the client")


def restart(group: GroupOpt = None, limit: LimitOpt = None, concurrency: ConcurrencyOpt = None,
            json_out: JsonOpt = False) -> None:  # fmt: skip
    """Restart the client daemon and verify it connects."""
    _run("restart", group, limit, {}, concurrency, json_out, "restart the client")


def converge(
    group: GroupOpt = None,
    limit: LimitOpt = None,
    version: Annotated[
        str | None, typer.Option("--version", help="The version they should run (default as deploy).")
    ] = None,
    trust: TrustOpt = None,
    concurrency: ConcurrencyOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Re-check installed Macs and repair drift (stopped daemon, lost key access, wrong conf, trust); a Mac
    awaiting its CA trust is finished once the trust is there (MDM profile), then verified."""
    console = Console(json_mode=json_out)
    groups, limits = targets(group, limit)
    settings = context.settings()
    try:
        with session_scope(context.engine()) as s:
            plan = plan_converge_run(
                s,
                settings,
                DeployRequest(groups=groups, limits=limits, version=version, trust=trust),
                settings.actor,
            )
    except PlanningError as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    print_refused(console, plan.refused)
    assert plan.run_id is not None
    n, version = len(plan.device_ids), plan.params["version"]
    console.info(f"run {plan.run_id}: converging {n} device(s) on {version}")
    raise typer.Exit(drive_run(console, plan.run_id, len(plan.device_ids), concurrency))


def logs(
    host: Annotated[str, typer.Argument(help="The device (inventory name).")],
    lines: Annotated[int, typer.Option("--lines", "-n", min=1, max=100_000, help="How many lines.")] = 200,
    daemon: Annotated[bool, typer.Option("--daemon", help="Also the daemon's start-up log.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Print the tail of the 1E Client's log(s) on one Mac (read-only; nothing is recorded)."""
    console = Console(json_mode=json_out)
    with session_scope(context.engine()) as s:
        devices = resolve_targets(s, [], [host])
        ids = [d.id for d in devices if d.name == host]
    if not ids:
        console.error(f"no device named {host!r}: see `orchestrate inventory list`")
        raise typer.Exit(EXIT_BAD_INPUT)
    params = {"lines": lines, "daemon": daemon}
    plan = remote.plans(params, ids, kind="logs")[0]
    if plan.error is not None:
        console.error(f"{host}: {plan.error[0]}: {plan.error[1]}")
        raise typer.Exit(EXIT_FAILED)
    texts: dict[str, str] = dict(getattr(plan.raw_facts, "logs", {}) or {})
    if console.json_mode:
        console.json({"device": host, "logs": texts})
        return
    for name, text in texts.items():
        console.info(f"==> {host}: {name} log <==")
        console.info(text.rstrip("\n") or "(empty or missing)")
