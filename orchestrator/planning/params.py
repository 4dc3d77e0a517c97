"""Where a run's parameters come from, highest first:

1. the flag (`DeployRequest` field);
2. group variables (`switch`, `background_url`, `client_version`, `install_method`, `expected_team_id`) of
   the groups named with `--group` (without `--group`: of the target devices' own groups). Within one named
   group the nearest definition wins: the group's own vars, then its parents', then grandparents' (as in
   Ansible, a child overrides its parent). When several groups give *different* values the plan is refused
   naming them: a run has one set of parameters, so the operator chooses with the flag;
3. the configuration file / environment (`[deploy]` switch, background_url, version, install_method,
   expected_team_id);
4. for the version only: the newest version in the artifact store.

Each value is checked here, before anything runs (PlanningError says what is wrong and what to do).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session, col, select

from orchestrator.artifacts import dmg_file_name, is_version, list_artifacts
from orchestrator.config import Settings
from orchestrator.inventory_store import group_tree
from orchestrator.planning.request import DeployRequest, PlanningError
from orchestrator.state.models import Artifact, CaCertificate, Group
from tasks.install.params import TRUST_MODES

__all__ = ["METHODS", "artifact_for", "normalize_background_url", "normalize_switch", "run_params"]

METHODS = ("install.sh", "pkg")

_HOST_PORT = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?:(\d{1,5})$")
_TEAM_ID = re.compile(r"^[A-Z0-9]{10}$")


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


def artifact_for(session: Session, version: str | None) -> Artifact:
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


def run_params(
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
    art = artifact_for(session, pick("version", request.version, d.version))
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

