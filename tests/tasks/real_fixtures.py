"""Checking a directory of parser fixtures captured on a real Mac (`orchestrate facts HOST --capture DIR`):
the logic of test_real_fixtures.py, shared with the end-to-end capture test."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.facts import facts_to_json
from tasks.model import ProbeOutput

from .parsers import PARSERS

REQUIRED = {"source", "argv", "exit_status", "stdout", "stderr"}


def fixture_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*/*.json"))


def check_fixture(path: Path) -> None:
    """The fixture is well formed, its probe has a parser, the parser reads its output without error, and
    the result equals "expected" when the fixture has one. Raises AssertionError saying what is wrong."""
    data = json.loads(path.read_text())
    where = f"{path.parent.name}/{path.name}"
    assert REQUIRED <= set(data) <= REQUIRED | {"expected"}, f"{where}: keys {sorted(data)}"
    assert str(data["source"]).strip(), f"{where}: no source"
    parser = PARSERS.get(path.parent.name)
    assert parser is not None, f"{where}: no parser for probe {path.parent.name!r} (tasks/probes.py PARSERS)"
    out = ProbeOutput(tuple(data["argv"]), data["exit_status"], data["stdout"], data["stderr"])
    try:
        got = facts_to_json(parser(out))
    except ValueError as e:
        raise AssertionError(f"{where}: the parser failed: {type(e).__name__}: {e}") from None
    if "expected" in data:
        assert got == data["expected"], (
            f"{where}: parsed {json.dumps(got)}, expected {json.dumps(data['expected'])}"
        )
