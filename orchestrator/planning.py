"""Planning a run: what to install where, decided from the database and the rules alone (no SSH).

`plan_install_run` turns a deploy request into a Run row with one DeviceJob per target device, after checking
offline everything that can be checked offline: the parameters (Switch, Background Channel URL, version,
install method) and, per device, its client certificate and whether another run holds it. A device refused
here gets a FAILED job with a typed reason, and nothing is ever sent to it. The certificate's names are
checked against the host name the Mac last reported, else the one the inventory declares; a device with
neither is checked by the runner's preflight against what the Mac reports.

Where a parameter comes from, highest first:

1. the flag (`DeployRequest` field);
2. group variables (`switch`, `background_url`, `client_version`, `install_method`, `expected_team_id`) of
   the groups named with `--group` (without `--group`: of the target devices' own groups). Within one named
   group the nearest definition wins: the group's own vars, then its parents', then grandparents' (as in
   Ansible, a child overrides its parent). When several groups give *different* values the plan is refused
   naming them: a run has one set of parameters, so the operator chooses with the flag;
3. the configuration file / environment (`[deploy]` switch, background_url, version, install_method,
   expected_team_id);
4. for the version only: the newest version in the artifact store.

`resume_run` puts a stopped run's unfinished jobs back to pending so a driver can continue it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session, col, select

from orchestrator import audit
from orchestrator.artifacts import dmg_file_name, is_version, list_artifacts
from orchestrator.certs.names import live_names
from orchestrator.config import Settings
from orchestrator.inventory_store import device_groups, group_tree, resolve_targets
from orchestrator.leases import device_holder
from orchestrator.state.models import (
    Artifact,
    CaCertificate,
    ClientCertificate,
    Device,
    DeviceJob,
    DeviceLock,
    Group,
    JobStatus,
    Run,
    RunStatus,
    utcnow,
)
from orchestrator.waves import WaveSpecError, assign_waves, parse_threshold, parse_waves
from tasks.hostnames import DEFAULT_NAME_RULE, MacNames, match_names
from tasks.install.params import TRUST_MODES

__all__ = [
    "METHODS",
    "DeployRequest",
    "PlannedRun",
    "PlanningError",
    "plan_install_run",
    "resume_run",
]

METHODS = ("install.sh", "pkg")

_HOST_PORT = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?:(\d{1,5})$")
_TEAM_ID = re.compile(r"^[A-Z0-9]{10}$")
_FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class PlanningError(ValueError):
    """The run cannot be planned or resumed; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class DeployRequest:
    """What the operator asked for: targets, and parameters given as flags (None: not given)."""

    groups: list[str]
    limits: list[str]
    switch: str | None = None
    background_url: str | None = None
    version: str | None = None
    method: str | None = None
    expected_team_id: str | None = None
    trust: str | None = None  # ssh | profile | skip (tasks.install.params.TRUST_MODES); None: [trust] mode


@dataclass(frozen=True)
class WaveRequest:
    """How to roll out: cumulative wave sizes, the failure threshold, the pause between waves, canaries."""

    waves: str = "100%"
    max_failures: str | None = None
    pause: float = 0.0
    canary: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpgradeOptions:
    rollback: bool = False
    allow_all_apps: bool = False
    retry_unreachable: float = 0.0  # seconds to keep retrying unreachable Macs (laptops asleep)


@dataclass(frozen=True)
class PlannedRun:
    """A planned run. `params` is exactly what `Run.params_json` holds (and the runner reads)."""

    run_id: str | None  # None when not persisted (dry run)
    params: dict[str, Any]
    device_ids: list[str]  # devices that will run, in name order
    refused: dict[str, tuple[str, str]]  # device name -> (error_type, message), refused before any SSH
    device_names: dict[str, str] | None = None  # device id -> name, for the devices that will run

    def as_json(self) -> dict[str, Any]:
        names = self.device_names or {}
        return {
            "run_id": self.run_id,
            "params": self.params,
            "devices": [names.get(i, i) for i in self.device_ids],
            "refused": {n: {"error_type": t, "message": m} for n, (t, m) in self.refused.items()},
        }


# ---------------------------------------------------------------- parameters


@dataclass(frozen=True)
class _Source:
    key: str  # group var key
    flag: str
    config: str  # `[deploy]` key


_SOURCES = {
    "switch": _Source("switch", "--switch", "switch"),
    "background_url": _Source("background_url", "--background-url", "background_url"),
    "version": _Source("client_version", "--version", "version"),
    "method": _Source("install_method", "--method", "install_method"),
    "expected_team_id": _Source("expected_team_id", "--expected-team-id", "expected_team_id"),
}


def _group_vars(session: Session) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, raw in session.exec(select(Group.name, Group.vars_json)).all():
        try:
            parsed = json.loads(raw or "{}")
        except ValueError:
            parsed = {}
        out[name] = parsed if isinstance(parsed, dict) else {}
    return out


def _nearest(
    group: str, key: str, gvars: Mapping[str, Mapping[str, Any]], parents: Mapping[str, list[str]]
) -> Any:
    """The value of `key` for `group`: its own var, else the nearest ancestor's (breadth first)."""
    level, seen = [group], {group}
    while level:
        for g in sorted(level):
            value = gvars.get(g, {}).get(key)
            if value is not None:
                return value
        nxt = []
        for g in level:
            for p in parents.get(g, []):
                if p not in seen:
                    seen.add(p)
                    nxt.append(p)
        level = nxt
    return None


def _from_groups(
    groups: Sequence[str], key: str, gvars: Mapping[str, Mapping[str, Any]], parents: Mapping[str, list[str]]
) -> tuple[Any, list[str]]:
    """The value the groups agree on for `key` (None when none sets it), and which groups gave it.

    Raises PlanningError when two groups give different values."""
    found: dict[str, Any] = {}
    for g in groups:
        v = _nearest(g, key, gvars, parents)
        if v is not None:
            found[g] = v
    values = {json.dumps(v, sort_keys=True) for v in found.values()}
    if len(values) > 1:
        given = ", ".join(f"{g}: {v!r}" for g, v in sorted(found.items()))
        src = next(s for s in _SOURCES.values() if s.key == key)
        raise PlanningError(
            f"the target groups disagree on {key} ({given}); a run has one value: choose it with {src.flag}"
        )
    return (next(iter(found.values())) if found else None), sorted(found)


def _pick(
    name: str,
    flag_value: str | None,
    groups: Sequence[str],
    gvars: Mapping[str, Mapping[str, Any]],
    parents: Mapping[str, list[str]],
    config_value: str | None,
) -> str | None:
    if flag_value is not None and str(flag_value).strip():
        return str(flag_value).strip()
    value, _ = _from_groups(groups, _SOURCES[name].key, gvars, parents)
    if value is not None:
        return str(value).strip()
    return config_value.strip() if isinstance(config_value, str) and config_value.strip() else None


def _missing(name: str, what: str) -> PlanningError:
    src = _SOURCES[name]
    return PlanningError(
        f"no {what} given: pass {src.flag}, set `{src.config}` under [deploy] in orchestrate.toml, "
        f"or set the group variable `{src.key}`"
    )


def _switch_ok(part: str) -> bool:
    m = _HOST_PORT.match(part)
    return m is not None and 1 <= int(m.group(1)) <= 65535


def _https_ok(part: str) -> bool:
    u = urlsplit(part)
    return u.scheme == "https" and bool(u.hostname) and not any(c.isspace() for c in part)


def _normalize_list(value: str, ok: Callable[[str], bool], what: str, example: str) -> str:
    """Parts separated by `,` or `;`, each checked by ok, joined with `;` as 1E's conf writes them."""
    parts = [p.strip() for p in re.split(r"[;,]", value) if p.strip()]
    if not parts:
        raise PlanningError(f"the {what} is empty: give e.g. {example}")
    for p in parts:
        if not ok(p):
            raise PlanningError(f"{what} {p!r} is not valid: give e.g. {example} (several: separated by ',')")
    return ";".join(parts)


def normalize_switch(value: str) -> str:
    """`host:port[,host:port...]` as 1E's conf writes it (`;`-separated). Raises PlanningError."""
    return _normalize_list(value, _switch_ok, "Switch (HOST:PORT)", "tachyon.acme.local:4000")


def normalize_background_url(value: str) -> str:
    """One or more https URLs, `;`-separated as 1E's conf writes them. Raises PlanningError."""
    return _normalize_list(
        value, _https_ok, "Background Channel URL (https)", "https://tachyon.acme.local:443/Background/"
    )


def _version_key(v: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.-]", v))


def _artifact_for(session: Session, version: str | None) -> Artifact:
    arts = list_artifacts(session)
    if version is None:
        if not arts:
            raise PlanningError(
                "no version given and the artifact store is empty: add the 1E Client DMG with "
                "`orchestrate artifact add DMG` (or pass --version / set `version` under [deploy])"
            )
        newest = max(arts, key=lambda a: (_version_key(a.version), a.added_at))
        version = newest.version
    hits = sorted((a for a in arts if a.version == version), key=lambda a: a.added_at)
    if not hits:
        have = ", ".join(sorted({a.version for a in arts}, key=_version_key)) or "none"
        if not is_version(version):
            raise PlanningError(
                f"version {version!r} is not dotted numbers like 8.0.1.23 (versions in the store: {have})"
            )
        raise PlanningError(
            f"no DMG for version {version}: orchestrate artifact add {dmg_file_name(version)} (1E's file "
            f"name; a file named otherwise needs --version {version}; versions in the store: {have})"
        )
    return hits[-1]  # several DMGs of one version: the one added last


def _params(
    session: Session, settings: Settings, request: DeployRequest, groups: Sequence[str]
) -> dict[str, Any]:
    gvars = _group_vars(session)
    parents: dict[str, list[str]] = {}
    for parent, kids in group_tree(session).items():
        for k in kids:
            parents.setdefault(k, []).append(parent)
    d = settings.deploy

    def pick(name: str, flag: str | None, config: str | None) -> str | None:
        return _pick(name, flag, groups, gvars, parents, config)

    switch = pick("switch", request.switch, d.switch)
    if switch is None:
        raise _missing("switch", "Tachyon Switch")
    url = pick("background_url", request.background_url, d.background_url)
    if url is None:
        raise _missing("background_url", "Background Channel URL")
    method = pick("method", request.method, d.install_method) or "install.sh"
    if method not in METHODS:
        raise PlanningError(f"install method {method!r} is not one of {', '.join(METHODS)}: fix --method")
    team = pick("expected_team_id", request.expected_team_id, d.expected_team_id)
    if team is not None and not _TEAM_ID.match(team):
        raise PlanningError(f"Apple team id {team!r} is not 10 upper-case letters or digits: fix it")
    art = _artifact_for(session, pick("version", request.version, d.version))
    trust_mode = request.trust or settings.trust.mode
    if trust_mode not in TRUST_MODES:
        raise PlanningError(f"--trust {trust_mode!r} is not one of {', '.join(TRUST_MODES)}")
    cas = session.exec(select(CaCertificate.sha256).order_by(col(CaCertificate.sha256))).all()
    return {
        "version": art.version,
        "switch": normalize_switch(switch),
        "background_url": normalize_background_url(url),
        "artifact_sha256": art.sha256,
        "method": method,
        "expected_team_id": team,
        "cache_dmg": bool(d.keep_dmg_cache),
        "verify_timeout": float(d.verify_timeout),
        "ca_sha256s": list(cas),
        "name_rule": settings.certs.name_rule,
        "trust_mode": trust_mode,
    }


# ---------------------------------------------------------------- per-device checks


def _cert_problem(
    cert: ClientCertificate | None,
    hostname: str | None,
    now: datetime,
    names: MacNames | None = None,
    rule: str = DEFAULT_NAME_RULE,
) -> tuple[str, str] | None:
    """The reason a device's active certificate cannot be used, or None. names: the Mac's live names
    (`inventory probe`, a run's facts), judged under `rule`; else hostname: the host name declared in the
    inventory; neither skips the name check, which the runner's preflight then makes against what the Mac
    reports."""
    if cert is None:
        return (
            "NoCertificate",
            "no client certificate stored for this device: add its PFX with "
            "`orchestrate certs add PFX --password-file F`",
        )
    try:
        san = [str(n) for n in json.loads(cert.san_dns_json or "[]")]
    except ValueError:
        san = []
    carried = list(dict.fromkeys(([cert.subject_cn] if cert.subject_cn else []) + san))
    if names is not None:
        named = match_names(carried, names, rule)
        if not named.ok:
            return ("HostnameMismatch", f"{named.problem()}: {named.hint()}")
        hostname = None  # judged against the live names
    if hostname is not None and hostname not in carried:
        shown = ", ".join(repr(n) for n in carried) or "no CN and no SAN DNS name"
        case = any(n.lower() == hostname.lower() for n in carried)
        hint = " (only the case differs; the match is case-sensitive)" if case else ""
        return (
            "HostnameMismatch",
            f"the certificate names {shown} but the Mac's host name is {hostname!r}{hint}: issue one for "
            f"exactly {hostname!r} and add it with `orchestrate certs add`",
        )
    if now > cert.not_after:
        return (
            "CertificateExpired",
            f"the client certificate expired on {cert.not_after:%Y-%m-%d}: issue a new one and add it "
            "with `orchestrate certs add`",
        )
    if now < cert.not_before:
        return (
            "CertificateNotYetValid",
            f"the client certificate is valid only from {cert.not_before:%Y-%m-%d %H:%M} UTC: wait, or "
            "issue one valid now",
        )
    return None


def _refusals(
    session: Session, devices: Sequence[Device], now: datetime, rule: str = DEFAULT_NAME_RULE
) -> dict[str, tuple[str, str]]:
    """Device id -> (error_type, message) for each device that must not run; two queries in all."""
    ids = {d.id for d in devices}
    certs: dict[str, ClientCertificate] = {}
    rows = session.exec(
        select(ClientCertificate)
        .where(col(ClientCertificate.active))
        .order_by(col(ClientCertificate.added_at))
    ).all()
    for c in rows:
        if c.device_id in ids:
            certs[c.device_id] = c  # the newest active one wins, as in certs.store.active_certificate
    locks = {
        lk.device_id: lk
        for lk in session.exec(select(DeviceLock).where(col(DeviceLock.expires_at) > now)).all()
        if lk.device_id in ids
    }
    out: dict[str, tuple[str, str]] = {}
    for d in devices:
        lock = locks.get(d.id)
        if lock is not None:
            out[d.id] = (
                "DeviceBusy",
                f"run {lock.run_id} holds this device until {lock.expires_at:%Y-%m-%d %H:%M:%S} UTC: wait "
                f"for it (`orchestrate runs show {lock.run_id[:8]}`) or leave the device out with --limit",
            )
            continue
        # Only a host name we know is checked: an inventory name alone ("mac-01") is a handle, not what
        # the Mac's `hostname` prints, and refusing on it would turn good devices away.
        problem = _cert_problem(
            certs.get(d.id), d.reported_hostname or d.expected_hostname, now, live_names(d), rule
        )
        if problem is not None:
            out[d.id] = problem
    return out


def plan_install_run(
    session: Session, settings: Settings, request: DeployRequest, actor: str, *, persist: bool = True
) -> PlannedRun:
    """Plan an install run for the request's targets (see `plan_run`)."""
    return plan_run(session, settings, request, actor, persist=persist)


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
    from inventory import TargetingError

    try:
        devices = resolve_targets(session, request.groups, request.limits)
    except TargetingError as e:
        raise PlanningError(f"{e}: check --group/--limit (`orchestrate inventory list`)") from None
    groups = list(request.groups)
    if not groups:
        member = device_groups(session)
        groups = sorted({g for d in devices for g in member.get(d.id, [])})
    params = _params(session, settings, request, groups)
    params.update(extra or {})
    now = utcnow()
    refused = _refusals(session, devices, now, str(params.get("name_rule") or DEFAULT_NAME_RULE))
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


# ---------------------------------------------------------------- lifecycle runs

LIFECYCLE_KINDS = ("uninstall", "reconfigure", "start", "stop", "restart", "logs", "check")


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
    from inventory import TargetingError
    from tasks.reconfigure import validate_conf_keys

    if kind not in LIFECYCLE_KINDS:
        raise PlanningError(f"unknown run kind {kind!r}")
    try:
        devices = resolve_targets(session, list(groups), list(limits))
    except TargetingError as e:
        raise PlanningError(f"{e}: check --group/--limit (`orchestrate inventory list`)") from None
    params = dict(params)
    if kind == "reconfigure":
        try:
            params["pairs"] = [list(p) for p in validate_conf_keys(tuple(params.get("pairs") or ()))]
        except ValueError as e:
            raise PlanningError(f"reconfigure: {e}") from None
        if not params["pairs"]:
            raise PlanningError("reconfigure: give at least one KEY=VALUE (e.g. SWITCH=sw.example.com:4000)")
    if kind == "uninstall" and params.get("dmg_version"):
        art = _artifact_for(session, str(params.pop("dmg_version")))
        params["artifact_sha256"] = art.sha256
    now = utcnow()
    busy: dict[str, tuple[str, str]] = {}
    for d in devices:
        holder = device_holder(session, d.id, now)
        if holder is not None:
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
    from inventory import TargetingError

    try:
        devices = resolve_targets(session, request.groups, request.limits)
    except TargetingError as e:
        raise PlanningError(f"{e}: check --group/--limit (`orchestrate inventory list`)") from None
    installed = [d.name for d in devices if d.installed_version]
    if not installed:
        raise PlanningError("no targeted device has the client installed on record: use `orchestrate deploy`")
    narrowed = DeployRequest(
        groups=request.groups, limits=[*request.limits, *installed] if request.limits else installed,
        switch=request.switch, background_url=request.background_url, version=request.version,
        method=request.method, expected_team_id=request.expected_team_id, trust=request.trust,
    )  # fmt: skip
    return plan_run(session, settings, narrowed, actor, kind="converge")


# ---------------------------------------------------------------- halt, retry, resume


def halt_run(session: Session, run_id: str, actor: str, reason: str | None = None) -> Run:
    """Mark a running run halted: its drivers stop starting devices (devices mid-step finish that step).
    Raises PlanningError for a run that is not running or pending."""
    run = find_run(session, run_id)
    if run.status not in (RunStatus.RUNNING, RunStatus.PENDING):
        raise PlanningError(f"run {run.id[:12]} is {run.status}; only a running or pending run can be halted")
    run.status = RunStatus.HALTED
    run.halt_reason = f"halted by {actor}" + (f": {reason}" if reason else "")
    session.add(run)
    audit.record(session, actor, "runs.halt", {"run_id": run.id, "reason": reason})
    return run


def retry_failed(session: Session, run_id: str, actor: str) -> tuple[Run, list[str]]:
    """Put the run's failed devices (not refused-at-planning ones) back to pending; returns (run, their job
    ids) for the driver to run those and no others. Raises PlanningError when nothing failed."""
    run = find_run(session, run_id)
    jobs = session.exec(
        select(DeviceJob).where(DeviceJob.run_id == run.id, DeviceJob.status == JobStatus.FAILED)
    ).all()
    again = [j for j in jobs if j.current_step != "plan"]
    if not again:
        raise PlanningError(f"run {run.id[:12]} has no failed device to retry")
    for j in again:
        j.status = JobStatus.PENDING
        j.error_type = j.error_message = None
        j.lease_owner, j.lease_expires_at, j.ended_at = None, None, None
        session.add(j)
    run.status, run.halt_reason, run.ended_at = RunStatus.HALTED, None, None
    session.add(run)
    audit.record(session, actor, "runs.retry", {"run_id": run.id, "devices": len(again)})
    return run, [j.id for j in again]



def find_run(session: Session, run_id_or_prefix: str) -> Run:
    """The run with this id, or the one run whose id starts with this prefix (like git).

    Raises PlanningError (LookupError semantics) for an unknown or ambiguous prefix."""
    ref = run_id_or_prefix.strip().lower()
    if not ref:
        raise PlanningError("give a run id (see `orchestrate runs list`)")
    run = session.get(Run, ref)
    if run is not None:
        return run
    escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    hits = session.exec(select(Run).where(col(Run.id).like(escaped + "%", escape="\\")).limit(6)).all()
    if not hits:
        raise PlanningError(
            f"no run has an id starting with {run_id_or_prefix!r}: see `orchestrate runs list`"
        )
    if len(hits) > 1:
        shown = ", ".join(r.id[:12] for r in hits[:5])
        raise PlanningError(
            f"{run_id_or_prefix!r} matches several runs ({shown}{', ...' if len(hits) > 5 else ''}): "
            "give more characters of the id"
        )
    return hits[0]


def resume_run(session: Session, run_id: str, actor: str) -> Run:
    """Make a stopped run resumable: its unfinished jobs (pending, interrupted, running) go back to pending
    and the run to running; when the run was halted by its failure threshold, its failed jobs are retried
    too (the operator fixed the cause; if they fail again, the gate halts the run again). Steps that
    completed are not repeated: the runner re-probes each Mac and re-plans (a finished step plans a no-op).

    A job still under a live lease (a controller killed a moment ago, or one still running) keeps its lease:
    the driver waits for it to expire before taking the job over, so two controllers never work on one
    device. Raises PlanningError for an unknown or a finished run (succeeded, failed, cancelled)."""
    run = find_run(session, run_id)
    if run.status in _FINISHED:
        raise PlanningError(
            f"run {run.id[:12]} has finished ({run.status}); nothing to resume: start a new run "
            "(`orchestrate deploy ...`) or retry its failed devices (`orchestrate runs retry "
            f"{run.id[:12]} --failed`)"
        )
    now = utcnow()
    by_threshold = run.status == RunStatus.HALTED and (run.halt_reason or "").startswith("halted:")
    jobs = session.exec(select(DeviceJob).where(DeviceJob.run_id == run.id)).all()
    reset = 0
    for j in jobs:
        live = j.lease_expires_at is not None and j.lease_expires_at > now
        retry = by_threshold and j.status == JobStatus.FAILED
        if j.status in JobStatus.unfinished() or retry:
            j.status = JobStatus.RUNNING if live and j.status == JobStatus.RUNNING else JobStatus.PENDING
            if not live:
                j.lease_owner, j.lease_expires_at = None, None
            if retry:
                j.error_type = j.error_message = None
                j.ended_at = None
            session.add(j)
            reset += 1
    run.status = RunStatus.RUNNING
    run.halt_reason = None
    run.ended_at = None
    session.add(run)
    session.flush()
    audit.record(session, actor, "runs.resume", {"run_id": run.id, "jobs_resumed": reset})
    return run
