"""The plan variants: each turns a request into a pending Run with one DeviceJob per target device.

- `plan_run`: the install workflow (install; `plan_upgrade_run`: to a version, in waves, with rollback;
  `plan_converge_run`: re-check and repair the devices that have the client);
- `plan_lifecycle_run`: uninstall, reconfigure, start/stop/restart, logs, check.

A device refused offline (`refusals`) gets a FAILED job with a typed reason, and nothing is ever sent to it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session

from inventory import TargetingError
from orchestrator import audit
from orchestrator.config import Settings
from orchestrator.inventory_store import device_groups, resolve_targets
from orchestrator.leases import live_locks
from orchestrator.planning.params import artifact_for, run_params
from orchestrator.planning.refusals import refusals
from orchestrator.planning.request import (
    DeployRequest,
    PlannedRun,
    PlanningError,
    UpgradeOptions,
    WaveRequest,
)
from orchestrator.state.models import Device, DeviceJob, JobStatus, Run, RunStatus, utcnow
from orchestrator.waves import WaveSpecError, assign_waves, parse_threshold, parse_waves
from tasks.hostnames import DEFAULT_NAME_RULE
from tasks.reconfigure import validate_conf_keys

__all__ = ["LIFECYCLE_KINDS", "plan_converge_run", "plan_lifecycle_run", "plan_run", "plan_upgrade_run"]

LIFECYCLE_KINDS = ("uninstall", "reconfigure", "start", "stop", "restart", "logs", "check")


def _targets(session: Session, groups: Sequence[str], limits: Sequence[str]) -> list[Device]:
    try:
        return resolve_targets(session, list(groups), list(limits))
    except TargetingError as e:
        raise PlanningError(f"{e}: check --group/--limit (`orchestrate inventory list`)") from None


def plan_upgrade_run(
    session: Session,
    settings: Settings,
    request: DeployRequest,
    waves: WaveRequest,
    options: UpgradeOptions,
    actor: str,
    *,
    persist: bool = True,
) -> PlannedRun:
    """Plan an upgrade: the install workflow to `request.version` (required), in waves.

    Devices already at the target plan no-ops on the Mac (the runner checks the installed version there,
    not in our possibly stale record). With rollback, a device that fails after the new version went in is
    put back on the version it had (its DMG must be in the artifact store)."""
    if not request.version:
        raise PlanningError("upgrade needs --to VERSION (see `orchestrate artifact list`)")
    extra: dict[str, Any] = {
        "rollback": options.rollback,
        "allow_all_apps": options.allow_all_apps,
        "retry_unreachable": options.retry_unreachable,
    }
    return plan_run(
        session, settings, request, actor, persist=persist, kind="upgrade", extra=extra, waves=waves
    )


def plan_run(
    session: Session,
    settings: Settings,
    request: DeployRequest,
    actor: str,
    *,
    persist: bool = True,
    kind: str = "install",
    extra: dict[str, Any] | None = None,
    waves: WaveRequest | None = None,
) -> PlannedRun:
    """Plan a run of the install workflow (install, upgrade) for the request's targets.

    Raises PlanningError for unusable parameters (missing or malformed Switch or URL, unknown version,
    disagreeing group vars) or when no device is targeted. With `persist`, adds to the session (committed by
    the caller) a pending Run, one DeviceJob per target — FAILED with error_type/message for refused devices,
    whose Device row records the refusal as its last outcome — and an audit event.
    """
    devices = _targets(session, request.groups, request.limits)
    groups = list(request.groups)
    if not groups:
        member = device_groups(session)
        groups = sorted({g for d in devices for g in member.get(d.id, [])})
    params = run_params(session, settings, request, groups)
    params.update(extra or {})
    now = utcnow()
    refused = refusals(session, devices, now, str(params.get("name_rule") or DEFAULT_NAME_RULE))
    run_ids = [d.id for d in devices if d.id not in refused]
    names = {d.id: d.name for d in devices}
    wave_of: dict[str, int] = {}
    sizes: list[int] = []
    if waves is not None:
        try:
            sizes = parse_waves(waves.waves, len(run_ids))
            if waves.max_failures is not None:
                params["max_failures"] = parse_threshold(waves.max_failures).as_text()
            wave_of = assign_waves([names[i] for i in run_ids], sizes, waves.canary)
        except WaveSpecError as e:
            raise PlanningError(str(e)) from None
        params["pause"] = float(waves.pause)
        params["waves"] = sizes
    plan = PlannedRun(
        run_id=None,
        params=params,
        device_ids=run_ids,
        refused={names[i]: r for i, r in refused.items()},
        device_names={i: names[i] for i in run_ids},
    )
    if not persist:
        return plan
    run = Run(kind=kind, status=RunStatus.PENDING, params_json=json.dumps(params, sort_keys=True),
              executor="local", created_by=actor, waves_json=json.dumps(sizes))  # fmt: skip
    session.add(run)
    session.flush()
    for d in devices:
        problem = refused.get(d.id)
        if problem is None:
            session.add(DeviceJob(run_id=run.id, device_id=d.id, status=JobStatus.PENDING,
                                  wave=wave_of.get(d.name, 0)))  # fmt: skip
            continue
        session.add(
            DeviceJob(
                run_id=run.id, device_id=d.id, status=JobStatus.FAILED, error_type=problem[0],
                error_message=problem[1], current_step="plan", ended_at=now,
            )
        )
        d.last_run_id, d.last_outcome = run.id, JobStatus.FAILED
        d.last_error = f"{problem[0]}: {problem[1]}"
        session.add(d)
    session.flush()
    audit.record(
        session,
        actor,
        f"{'deploy' if kind == 'install' else kind}.plan",
        {
            "run_id": run.id,
            "groups": list(request.groups),
            "limits": list(request.limits),
            "devices": len(devices),
            "refused": {names[i]: t for i, (t, _m) in refused.items()},
            "params": params,
        },
    )
    return PlannedRun(run.id, params, run_ids, plan.refused, plan.device_names)



def plan_lifecycle_run(
    session: Session,
    settings: Settings,
    kind: str,
    groups: Sequence[str],
    limits: Sequence[str],
    params: dict[str, Any],
    actor: str,
) -> PlannedRun:
    """Plan an uninstall, reconfigure, start/stop/restart or logs run over the targets. Parameters are
    validated before anything runs (reconfigure: the conf keys); a device held by another active run is
    refused (DeviceBusy). Raises PlanningError."""
    if kind not in LIFECYCLE_KINDS:
        raise PlanningError(f"unknown run kind {kind!r}")
    devices = _targets(session, groups, limits)
    params = dict(params)
    if kind == "reconfigure":
        try:
            params["pairs"] = [list(p) for p in validate_conf_keys(tuple(params.get("pairs") or ()))]
        except ValueError as e:
            raise PlanningError(f"reconfigure: {e}") from None
        if not params["pairs"]:
            raise PlanningError("reconfigure: give at least one KEY=VALUE (e.g. SWITCH=sw.example.com:4000)")
    if kind == "uninstall" and params.get("dmg_version"):
        art = artifact_for(session, str(params.pop("dmg_version")))
        params["artifact_sha256"] = art.sha256
    now = utcnow()
    busy: dict[str, tuple[str, str]] = {}
    locks = live_locks(session, [d.id for d in devices], now)
    for d in devices:
        if d.id in locks:
            holder = locks[d.id].run_id
            busy[d.id] = ("DeviceBusy", f"{d.name} is held by active run {holder[:12]}: wait, or halt it")
    run = Run(kind=kind, status=RunStatus.PENDING, params_json=json.dumps(params, sort_keys=True),
              executor=settings.executor.value, created_by=actor)  # fmt: skip
    session.add(run)
    session.flush()
    for d in devices:
        problem = busy.get(d.id)
        if problem is None:
            session.add(DeviceJob(run_id=run.id, device_id=d.id, status=JobStatus.PENDING))
        else:
            session.add(
                DeviceJob(run_id=run.id, device_id=d.id, status=JobStatus.FAILED, error_type=problem[0],
                          error_message=problem[1], current_step="plan", ended_at=now)
            )  # fmt: skip
    session.flush()
    audit.record(session, actor, f"{kind}.plan", {"run_id": run.id, "groups": list(groups),
                                                  "limits": list(limits), "params": params})  # fmt: skip
    names = {d.id: d.name for d in devices}
    ids = [d.id for d in devices if d.id not in busy]
    return PlannedRun(run.id, params, ids, {names[i]: r for i, r in busy.items()}, {i: names[i] for i in ids})


def plan_converge_run(
    session: Session, settings: Settings, request: DeployRequest, actor: str
) -> PlannedRun:
    """Re-check every targeted device that has the client installed and repair drift (stopped daemon, lost
    key access, wrong conf, missing trust): the install workflow, whose steps are no-ops where the Mac is
    right. Devices with no installed client on record are left out (deploy installs them)."""
    devices = _targets(session, request.groups, request.limits)
    installed = [d.name for d in devices if d.installed_version]
    if not installed:
        raise PlanningError("no targeted device has the client installed on record: use `orchestrate deploy`")
    narrowed = DeployRequest(
        groups=request.groups, limits=[*request.limits, *installed] if request.limits else installed,
        switch=request.switch, background_url=request.background_url, version=request.version,
        method=request.method, expected_team_id=request.expected_team_id, trust=request.trust,
    )  # fmt: skip
    return plan_run(session, settings, narrowed, actor, kind="converge")
