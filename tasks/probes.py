"""Every read-only probe the workflows run on a Mac, derived from the workflows themselves, and the parser
that reads each one (for the parser fixtures and `orchestrate facts --capture`).

Nothing here keeps its own list of commands: the probes are each workflow's `fact_commands` and every
read-only command its step planners return for the Mac's own facts (verify's probes among them), so a
probe a workflow gains is captured without a change here. Only the parser map names probes: a captured
probe without a parser is reported by the fixture tests. Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tasks import facts as f
from tasks.evidence import DEFAULT_RULES
from tasks.install import verify as v
from tasks.install.pkginfo import parse_package_info
from tasks.logs import LOG_PREFIX, parse_logs
from tasks.model import SAMPLE_PRIVATE_DIR, Command, Plan, ProbeOutput, Refusal
from tasks.registry import WORKFLOWS

PRIVATE_DIR = SAMPLE_PRIVATE_DIR  # never created: a capture runs read-only probes only


def _log(name: str) -> Callable[[ProbeOutput], str]:
    return lambda out: parse_logs({f"{LOG_PREFIX}{name}": out})[name]


# fixture directory (the probe's name, see `fixture_name`) -> the parser its output goes through
PARSERS: dict[str, Callable[[ProbeOutput], Any]] = {
    "sw_vers": f.parse_sw_vers,
    "arch": f.parse_uname_m,
    "x86_64": f.parse_rosetta,
    "hostname": f.parse_hostname,
    "local_host_name": f.parse_scutil_get,
    "host_name": f.parse_scutil_get,
    "computer_name": f.parse_scutil_get,
    "pkg_info": f.parse_pkg_info,
    "binary_sha256": f.parse_shasum,
    "dmg_cache": f.parse_shasum,
    "conf": f.parse_conf,
    "launchd": f.parse_launchctl_print,
    "identities": f.parse_find_identity,
    "certificates": f.parse_find_certificate,
    "admin_trust": f.parse_dump_trust_settings,
    "df": f.parse_df_k,
    "client_log": f.parse_log_tail,
    "pkg_location": f.parse_pkg_location,
    "pkg_files": f.parse_pkg_files,
    "present": f.parse_ls_d,
    "package_info": parse_package_info,
    "client_sockets": f.parse_client_sockets,
    "log_mark": v.parse_log_mark,
    "verify_poll": v.parse_poll,
    "log-client": _log("client"),
    "log-daemon": _log("daemon"),
}


# a probe whose output more than one parser reads: its fixture is written once per parser
ALSO_PARSED_AS: dict[str, tuple[str, ...]] = {"pkg_info": ("pkg_location",)}


def fixture_name(probe: str) -> str:
    """A probe's name as a directory name (`log:client` -> `log-client`)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", probe).strip("-") or "probe"


def sample_params(kind: str, facts: Any = None) -> Any:
    """Parameters a run of workflow `kind` could have on this Mac (its facts, as that workflow parses them),
    so its planners name every probe they use: each workflow says what (`Workflow.sample_params`)."""
    return WORKFLOWS[kind].sample_params(facts)


def _add(found: dict[tuple[str, ...], tuple[str, Command]], name: str, c: Command) -> None:
    if c.argv in found:
        return
    taken = {n for n, _ in found.values()}
    unique, i = name, 2
    while unique in taken:
        unique, i = f"{name}-{i}", i + 1
    found[c.argv] = (unique, Command(c.argv, sudo=c.sudo, mutating=False, ok_codes=c.ok_codes))


def fact_probes() -> tuple[tuple[str, Command], ...]:
    """Every workflow's fact probes, by name, each argv once (the first workflow's name wins)."""
    found: dict[tuple[str, ...], tuple[str, Command]] = {}
    for kind, wf in WORKFLOWS.items():
        for name, c in wf.fact_commands(sample_params(kind)):
            _add(found, name, c)
    return tuple(found.values())


def _plans(kind: str, facts: Any, params: Any) -> list[tuple[str, Plan]]:
    plans = []
    for sd in WORKFLOWS[kind].steps:
        try:
            plans.append((sd.name, sd.planner(facts, params)))
        except (Refusal, ValueError, KeyError):
            continue  # a planner that declines this Mac names no probe
    return plans


def _parsed_as(c: Command) -> str | None:
    """The PARSERS name of a plan's own probe (verify's poll, the start step's log mark), if it has one."""
    if v.is_poll(c.argv):
        return "verify_poll"
    if c.argv == v.LOG_MARK.argv:
        return "log_mark"
    return None


def plan_probes(outputs: Mapping[str, ProbeOutput]) -> tuple[tuple[tuple[str, Command], ...], list[str]]:
    """The read-only commands the workflows' step plans (verify's probes among them) would run on the Mac
    whose fact outputs these are, named like the fact probe with the same argv, else after the workflow
    and step. Commands that read what a run pushes (its private directory) are left out. Also returns the
    workflows whose facts did not parse (their plans are unknown: fix the parser first)."""
    known = {c.argv: name for name, c in fact_probes()}
    by_argv = {c.argv: outputs[name] for name, c in fact_probes() if name in outputs}
    found: dict[tuple[str, ...], tuple[str, Command]] = {}
    errors: list[str] = []
    for kind, wf in WORKFLOWS.items():
        # the workflow's own names for the outputs (a probe two workflows share ran once, under one name)
        own = {n: by_argv[c.argv] for n, c in wf.fact_commands(sample_params(kind)) if c.argv in by_argv}
        try:
            facts = wf.parse_facts(sample_params(kind), own, DEFAULT_RULES)
            params = sample_params(kind, facts)
        except (ValueError, KeyError) as e:
            errors.append(f"{kind}: {e}")
            continue
        for step, plan in _plans(kind, facts, params):
            for c in plan.commands:
                words = (*c.argv, *(c.unless or ()))
                if c.mutating or c.stdin is not None or any(PRIVATE_DIR in w for w in words):
                    continue
                if c.argv not in known:
                    _add(found, _parsed_as(c) or f"{kind}.{step}", c)
    return tuple(found.values()), errors
