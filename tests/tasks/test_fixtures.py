"""Golden fixtures (DESIGN rule 1): one parametrized test per kind.

- parsers: tests/tasks/fixtures/facts/<probe>/<case>.json — a probe's real output (source named) in, the
  parsed fact out ("expected").
- planners: tests/tasks/fixtures/install/<step>/<case>.json — facts + params in, `Plan.as_json()` out.

MACFLEET_REGEN_FIXTURES=1 rewrites the expected outputs (review the diff before committing)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tasks.facts import MacFacts, facts_to_json
from tasks.install import INSTALL, InstallParams
from tasks.model import ProbeOutput

from .parsers import PARSERS

FIXTURES = Path(__file__).parent / "fixtures"
REGEN = os.environ.get("MACFLEET_REGEN_FIXTURES") == "1"


def _files(kind: str) -> list[Path]:
    return sorted((FIXTURES / kind).glob("*/*.json"))


def _check(path: Path, data: dict[str, Any], key: str, got: Any) -> None:
    if REGEN:
        data[key] = got
        path.write_text(json.dumps(data, indent=1) + "\n")
        return
    assert got == data[key], f"{path.relative_to(FIXTURES)}: got {json.dumps(got, indent=1)}"


@pytest.mark.parametrize("path", _files("facts"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_parser_fixture(path: Path) -> None:
    data = json.loads(path.read_text())
    assert set(data) == {"source", "argv", "exit_status", "stdout", "stderr", "expected"}, path
    assert data["source"].strip()
    out = ProbeOutput(tuple(data["argv"]), data["exit_status"], data["stdout"], data["stderr"])
    _check(path, data, "expected", facts_to_json(PARSERS[path.parent.name](out)))


@pytest.mark.parametrize("path", _files("install"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_planner_fixture(path: Path) -> None:
    data = json.loads(path.read_text())
    assert set(data) == {"facts", "params", "plan"}, path
    facts = MacFacts.from_json(data["facts"])
    params = InstallParams.from_json(data["params"])
    plan = INSTALL.step(path.parent.name).planner(facts, params)
    _check(path, data, "plan", plan.as_json())


def test_every_step_has_fixtures() -> None:
    assert {p.parent.name for p in _files("install")} == {s.name for s in INSTALL.steps}
    assert {p.parent.name for p in _files("facts")} <= set(PARSERS)
