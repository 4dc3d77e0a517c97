"""Wave sizes, assignment and the gate (pure)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.waves import WaveSpecError, assign_waves, decide, parse_threshold, parse_waves


@pytest.mark.parametrize(
    ("text", "total", "sizes"),
    [
        ("1,5%,25%,100%", 20, [1, 5, 20]),  # 5% of 20 is 1: adds nobody, dropped
        ("1,5%,25%,100%", 1000, [1, 50, 250, 1000]),
        ("1,5%,25%,100%", 30, [1, 2, 8, 30]),  # percentages round up
        ("2,10", 5, [2, 5]),  # capped at the total
        ("1,3", 10, [1, 3, 10]),  # a final wave with everyone is added
        ("100%", 0, []),
    ],
)
def test_cumulative_sizes(text: str, total: int, sizes: list[int]) -> None:
    assert parse_waves(text, total) == sizes


@pytest.mark.parametrize("text", ["", "0", "-1", "5,2", "abc", "150%", "0%"])
def test_bad_wave_specs_say_what_to_give(text: str) -> None:
    with pytest.raises(WaveSpecError, match="--waves"):
        parse_waves(text, 10)


@given(total=st.integers(0, 5000), pcts=st.lists(st.integers(1, 100), max_size=5))
def test_sizes_are_strictly_increasing_and_cover_everyone(total: int, pcts: list[int]) -> None:
    sizes = parse_waves(",".join(f"{p}%" for p in sorted(pcts)) or "100%", total)
    assert all(a < b for a, b in itertools.pairwise(sizes))
    assert (sizes[-1] if sizes else 0) == total


def test_assignment_puts_canaries_first_then_a_stable_order() -> None:
    names = ["mac-c", "mac-a", "mac-d", "mac-b", "mac-e"]
    assert assign_waves(names, [1, 3, 5]) == {"mac-a": 0, "mac-b": 1, "mac-c": 1, "mac-d": 2, "mac-e": 2}
    assert assign_waves(names, [1, 3, 5], canary=["mac-e"])["mac-e"] == 0
    with pytest.raises(WaveSpecError, match="not in the target set: nope"):
        assign_waves(names, [1, 5], canary=["nope"])


def test_thresholds() -> None:
    assert parse_threshold("2%").crossed(1, 49) and not parse_threshold("2%").crossed(1, 50)
    assert parse_threshold("3").crossed(4, 100) and not parse_threshold("3").crossed(3, 4)
    assert not parse_threshold("0%").crossed(0, 10) and parse_threshold("0").crossed(1, 1000)
    for bad in ("x", "-1", "101%"):
        with pytest.raises(WaveSpecError, match="--max-failures"):
            parse_threshold(bad)


def test_gate_waits_opens_halts_and_finishes() -> None:
    t = parse_threshold("10%")
    assert decide({0: {"running": 1}, 1: {"pending": 4}}, t).action == "wait"
    assert decide({0: {"queued": 1}, 1: {"pending": 4}}, t).action == "wait"  # handed to a Celery worker
    assert decide({0: {"succeeded": 1}, 1: {"pending": 4}}, t) .wave == 1
    halted = decide({0: {"succeeded": 1}, 1: {"succeeded": 3, "failed": 1}, 2: {"pending": 15}}, t, ["mac-07"])
    assert halted.action == "halt" and "1 of 5" in halted.reason and "mac-07" in halted.reason
    assert decide({0: {"succeeded": 1}, 1: {"succeeded": 4}}, t).action == "done"
    # skipped devices (already at the target) count as attempted, not as failures
    assert decide({0: {"skipped": 9, "failed": 1}}, t).action == "done"


def test_an_unverified_canary_counts_against_max_failures() -> None:
    # a canary whose Switch connection could not be confirmed is no green light
    halted = decide({0: {"unverified": 1}, 1: {"pending": 9}}, parse_threshold("0"), ["mac-00"])
    assert halted.action == "halt" and "1 of 1" in halted.reason and "unverified included" in halted.reason
    assert decide({0: {"succeeded": 1}, 1: {"pending": 9}}, parse_threshold("0")).action == "open"
