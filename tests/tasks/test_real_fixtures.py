"""Every parser over fixtures captured on a real Mac: MACFLEET_REAL_FIXTURES=DIR names the directory that
`orchestrate facts HOST --capture DIR` wrote (skipped when unset). Each fixture must parse without error
and, where it has an expected value, equal it (README: "Real Macs as the reference")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .real_fixtures import check_fixture, fixture_files

REAL = os.environ.get("MACFLEET_REAL_FIXTURES")


def _params() -> list[Path | None]:
    if not REAL:
        return [None]
    files = fixture_files(Path(REAL))
    if not files:
        raise pytest.UsageError(f"MACFLEET_REAL_FIXTURES={REAL}: no <probe>/<case>.json files there")
    return list(files)


@pytest.mark.parametrize(
    "path", _params(), ids=lambda p: f"{p.parent.name}/{p.stem}" if isinstance(p, Path) else "unset"
)
def test_real_fixture(path: Path | None) -> None:
    if path is None:
        pytest.skip("MACFLEET_REAL_FIXTURES is not set (a directory from `orchestrate facts --capture`)")
    check_fixture(path)
