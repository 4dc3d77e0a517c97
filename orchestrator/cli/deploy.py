"""`orchestrate deploy`: plan an install run, then drive it (`dispatch`), or with --dry-run print each plan.

Exit codes: 0 every device succeeded (or had nothing to do); 1 a device failed or was refused; 2 the run
could not be planned (bad parameter, no target, unknown version); 3 none failed but some are unverified
(running, no confirmed Switch connection); 4 none failed or unverified but some await their CA trust;
130 stopped by Ctrl-C (resumable).
"""

from __future__ import annotations

import shlex
from typing import Annotated, Any

import typer

from orchestrator.cli import context, remote
from orchestrator.cli.dispatch import drive_run, finish, print_refused
from orchestrator.cli.exits import EXIT_BAD_INPUT, EXIT_FAILED
from orchestrator.cli.options import (
    ConcurrencyOpt,
    DetachOpt,
    ExecutorOpt,
    GroupOpt,
    JsonOpt,
    LimitOpt,
    TrustOpt,
    targets,
)  # fmt: skip
from orchestrator.console import Console
from orchestrator.planning.plans import plan_run
from orchestrator.planning.request import DeployRequest, PlannedRun, PlanningError
from orchestrator.state.db import session_scope


def deploy(
    group: GroupOpt = None,
    limit: LimitOpt = None,
    switch: Annotated[
        str | None, typer.Option("--switch", help="Tachyon Switch HOST:PORT (several: comma-separated).")
    ] = None,
    background_url: Annotated[
        str | None, typer.Option("--background-url", help="Background Channel https URL(s), comma-separated.")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="1E Client version (default: config, else newest DMG).")
    ] = None,
    method: Annotated[str | None, typer.Option("--method", help="install.sh (default) or pkg.")] = None,
    trust: TrustOpt = None,
    concurrency: ConcurrencyOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Gather facts and print each device's plan; change nothing.")
    ] = False,
    executor: ExecutorOpt = None,
    detach: DetachOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Install, configure and start the 1E Client on the targeted Macs."""
    console = Console(json_mode=json_out)
    groups, limits = targets(group, limit)
    settings = context.settings()
    request = DeployRequest(
        groups=groups, limits=limits, switch=switch, background_url=background_url, version=version,
        method=method, trust=trust,
    )  # fmt: skip
    try:
        with session_scope(context.engine()) as s:
            plan = plan_run(s, settings, request, settings.actor, persist=not dry_run)
    except PlanningError as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if dry_run:
        raise typer.Exit(_dry_run(console, plan, concurrency))
    print_refused(console, plan.refused)
    assert plan.run_id is not None  # persisted
    if not plan.device_ids:
        console.error("every targeted device was refused before any connection; fix the causes above")
        code = finish(console, plan.run_id, stopped=False)
        raise typer.Exit(code)
    version, n = plan.params["version"], len(plan.device_ids)
    console.info(f"run {plan.run_id}: installing {version} on {n} device(s)")
    raise typer.Exit(
        drive_run(console, plan.run_id, len(plan.device_ids), concurrency, executor=executor, detach=detach)
    )


def _dry_run(console: Console, plan: PlannedRun, concurrency: int | None) -> int:
    plans = remote.plans(plan.params, plan.device_ids, concurrency=concurrency)
    failed = bool(plan.refused) or any(
        p.error is not None or any("refusal" in step for _name, step in p.steps) for p in plans
    )
    if console.json_mode:
        data = plan.as_json()
        data["plans"] = [
            {"device": p.device, "facts": p.facts, "steps": [{"step": n, "plan": j} for n, j in p.steps],
             "error": {"error_type": p.error[0], "message": p.error[1]} if p.error else None}
            for p in plans
        ]  # fmt: skip
        console.json(data)
        return EXIT_FAILED if failed else 0
    print_refused(console, plan.refused)
    console.info("dry run: nothing was changed; parameters:")
    for k, v in plan.params.items():
        console.info(f"  {k}: {v}")
    for p in plans:
        console.info("")
        if p.error is not None:
            console.error(f"{p.device}: {p.error[0]}: {p.error[1]}")
            continue
        console.info(f"{p.device}:")
        for name, step in p.steps:
            console.info(f"  {name}: {_describe_step(step)}")
            for line in _step_lines(step):
                console.info(f"      {line}")
    return EXIT_FAILED if failed else 0


def _describe_step(step: dict[str, Any]) -> str:
    if "noop" in step:
        return f"nothing to do ({step['noop']})"
    if "refusal" in step:
        r = step["refusal"]
        hint = f" ({r['hint']})" if r.get("hint") else ""
        return f"REFUSED {r.get('error_type')}: {r.get('message')}{hint}"
    n_up, n_cmd = len(step.get("uploads", [])), len(step.get("commands", []))
    parts = [f"{n_up} upload(s)" if n_up else "", f"{n_cmd} command(s)" if n_cmd else ""]
    return ", ".join(x for x in parts if x)


def _step_lines(step: dict[str, Any]) -> list[str]:
    out = [f"upload {u['upload']} → {u['name']}" for u in step.get("uploads", [])]
    for c in step.get("commands", []):
        prefix = "" if c.get("sudo", True) is False else "sudo "
        line = prefix + shlex.join(c["argv"])
        if c.get("stdin"):
            line += f"  < {c['stdin']}"
        if c.get("unless"):
            line += f"  (unless {shlex.join(c['unless'])})"
        out.append(line)
    return out
