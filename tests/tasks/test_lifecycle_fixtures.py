"""Golden fixtures of the lifecycle workflows' planners (DESIGN rule 1): tests/tasks/fixtures/<workflow>/
<step>/<case>.json — ClientFacts + params in, `Plan.as_json()` out. The facts are what the real runner
gathered from macsim Macs in test_lifecycle_macsim.py (MACFLEET_DUMP_FACTS), some edited to a state that is
hard to reach there (a job loaded but not running, a receipt forgotten with its files left, a receipt path
that leaves its location). Cases per workflow: finished, fresh/stopped, partial, absent.

MACFLEET_REGEN_FIXTURES=1 rewrites the expected plans (review the diff before committing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.facts import ClientFacts
from tasks.registry import PARAMS, WORKFLOWS

from .test_fixtures import FIXTURES, _check

LIFECYCLE = ("uninstall", "reconfigure", "start", "stop", "restart")


def _files() -> list[Path]:
    return sorted(p for kind in LIFECYCLE for p in (FIXTURES / kind).glob("*/*.json"))


@pytest.mark.parametrize("path", _files(), ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}/{p.stem}")
def test_lifecycle_planner_fixture(path: Path) -> None:
    data = json.loads(path.read_text())
    assert set(data) == {"facts", "params", "plan"}, path
    kind = path.parent.parent.name
    facts = ClientFacts.from_json(data["facts"])
    params = PARAMS[kind].from_json(data["params"])
    plan = WORKFLOWS[kind].step(path.parent.name).planner(facts, params)
    _check(path, data, "plan", plan.as_json())


@pytest.mark.parametrize("kind", LIFECYCLE)
def test_every_step_has_the_same_cases(kind: str) -> None:
    steps = {s.name for s in WORKFLOWS[kind].steps}
    assert {p.name for p in (FIXTURES / kind).iterdir()} == steps
    cases = {s: {p.stem for p in (FIXTURES / kind / s).glob("*.json")} for s in steps}
    assert len({frozenset(c) for c in cases.values()}) == 1, cases
    assert {"finished", "absent"} <= next(iter(cases.values()))


@pytest.mark.parametrize("kind", LIFECYCLE)
def test_finished_and_absent_macs_plan_nothing_mutating(kind: str) -> None:
    """Re-running a finished workflow plans zero mutating commands (restart excepted: it is an action)."""
    done = "absent" if kind == "uninstall" else ("stopped" if kind == "stop" else "finished")
    if kind == "restart":
        pytest.skip("a restart restarts on every run")
    for step in WORKFLOWS[kind].steps:
        data = json.loads((FIXTURES / kind / step.name / f"{done}.json").read_text())
        plan = step.planner(ClientFacts.from_json(data["facts"]), PARAMS[kind].from_json(data["params"]))
        assert not plan.mutating, (kind, step.name, plan.as_json())
