"""`orchestrate upgrade`: move the 1E Client to a new version in waves — a canary, then growing batches —
halting when failures cross a threshold; optionally rolling a failed device back.

Exit codes as `deploy`: 0 all succeeded (or were already at the target); 1 a device failed, was rolled back
or refused, or the run halted; 2 the run could not be planned; 130 stopped by Ctrl-C (resumable).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from orchestrator.cli import context
from orchestrator.cli.dispatch import drive_run, print_refused
from orchestrator.cli.exits import EXIT_BAD_INPUT
from orchestrator.cli.options import ConcurrencyOpt, GroupOpt, JsonOpt, LimitOpt, TrustOpt, targets
from orchestrator.console import Console
from orchestrator.planning.plans import plan_upgrade_run
from orchestrator.planning.request import DeployRequest, PlanningError, UpgradeOptions, WaveRequest
from orchestrator.state.db import session_scope
from orchestrator.waves import WaveSpecError, parse_duration


def upgrade(
    to: Annotated[str, typer.Option("--to", help="The version to upgrade to (a DMG in the artifact store).")],
    group: GroupOpt = None,
    limit: LimitOpt = None,
    waves: Annotated[
        str | None,
        typer.Option("--waves", help="Cumulative wave sizes, e.g. 1,5%,25%,100% (default: config)."),
    ] = None,
    max_failures: Annotated[
        str | None,
        typer.Option("--max-failures", help="Halt when failures over attempted devices exceed N or P% ."),
    ] = None,
    pause: Annotated[
        str | None, typer.Option("--pause", help="Wait this long between waves (30s, 5m, 1h).")
    ] = None,
    confirm: Annotated[bool, typer.Option("--confirm", help="Ask before opening each next wave.")] = False,
    canary: Annotated[
        list[str] | None, typer.Option("--canary", help="Device(s) for the first wave (repeatable).")
    ] = None,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="Put a device that fails back on its previous version.")
    ] = False,
    allow_all_apps: Annotated[
        bool,
        typer.Option("--allow-all-apps", help="Import the identity with -A (any app may use its key)."),
    ] = False,
    retry_unreachable: Annotated[
        str | None,
        typer.Option("--retry-unreachable", help="Keep retrying unreachable Macs this long (e.g. 2h)."),
    ] = None,
    switch: Annotated[str | None, typer.Option("--switch", help="Tachyon Switch HOST:PORT[,...].")] = None,
    background_url: Annotated[str | None, typer.Option("--background-url", help="Background URL(s).")] = None,
    trust: TrustOpt = None,
    concurrency: ConcurrencyOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Upgrade the 1E Client on the targeted Macs in waves, keeping their configuration."""
    console = Console(json_mode=json_out)
    if confirm and json_out:
        console.error("--confirm asks questions; it cannot be combined with --json")
        raise typer.Exit(EXIT_BAD_INPUT)
    groups, limits = targets(group, limit)
    settings = context.settings()
    try:
        pause_s = parse_duration(pause) if pause else settings.waves.pause
        retry_s = parse_duration(retry_unreachable) if retry_unreachable else 0.0
    except WaveSpecError as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    request = DeployRequest(
        groups=groups, limits=limits, switch=switch, background_url=background_url, version=to, trust=trust
    )
    wave_req = WaveRequest(
        waves=waves or settings.waves.waves,
        max_failures=max_failures or settings.waves.max_failures,
        pause=pause_s,
        canary=tuple(canary or ()),
    )
    options = UpgradeOptions(
        rollback=rollback,
        allow_all_apps=allow_all_apps or settings.deploy.allow_all_apps,
        retry_unreachable=retry_s,
    )
    if options.allow_all_apps:
        console.warning(
            "--allow-all-apps: the client identity's private key will be usable by ANY application on "
            "each Mac "
            "(security import -A). Apple does not recommend this; without it we re-grant access to the new "
            "binary only (-T)."
        )
    try:
        with session_scope(context.engine()) as s:
            plan = plan_upgrade_run(s, settings, request, wave_req, options, settings.actor)
    except PlanningError as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    print_refused(console, plan.refused)
    assert plan.run_id is not None
    sizes = plan.params.get("waves") or []
    console.info(
        f"run {plan.run_id}: upgrading {len(plan.device_ids)} device(s) to {plan.params['version']}"
        + (f" in waves of {', '.join(map(str, sizes))} (cumulative)" if sizes else "")
        + f"; halting when failures exceed {plan.params.get('max_failures', 'none')}"
    )

    async def ask(wave: int, size: int) -> bool:
        question = f"open wave {wave + 1} ({size} more device(s))?"
        return await asyncio.to_thread(typer.confirm, question, default=True)

    code = drive_run(console, plan.run_id, len(plan.device_ids), concurrency, ask if confirm else None)
    raise typer.Exit(code)
