"""Settings of the fuzz and property suite (issue 14).

Every test here feeds one reader or parser that a user or a Mac feeds, with arbitrary or mutated input,
and asserts it returns a value or raises our typed error: never another exception, never a hang (each test
has a time limit), never more than a fixed memory (traced per call).

Fixed seed (derandomize) always, so CI is reproducible; the default profile keeps the whole suite well under
2 minutes on CI. The long profile explores far more: `MACFLEET_FUZZ=long pytest tests/fuzz` (or
`bash bench/fuzz`); `MACFLEET_FUZZ_EXAMPLES=N` sets the count directly.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from hypothesis import HealthCheck, settings

_EXAMPLES = int(
    os.environ.get("MACFLEET_FUZZ_EXAMPLES") or (3000 if os.environ.get("MACFLEET_FUZZ") == "long" else 60)
)

# Each test's time limit (pytest-timeout): a hang fails the test instead of stalling the suite.
TIME_LIMIT = 120 if _EXAMPLES <= 200 else 120 + _EXAMPLES

FUZZ = settings(
    max_examples=_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# A parser fed a few KiB must not allocate more than this (a quadratic blow-up or a runaway read would).
MEMORY_LIMIT = 64 * 1024 * 1024

T = TypeVar("T")


@contextmanager
def bounded_memory(limit: int = MEMORY_LIMIT) -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= limit, f"peak {peak} bytes over the {limit} bytes a parser may use"


def value_or(errors: tuple[type[BaseException], ...], fn: Callable[[], T]) -> T | BaseException:
    """fn's value, or the typed error it raised; any other exception fails the test (it propagates)."""
    with bounded_memory():
        try:
            return fn()
        except errors as e:
            assert str(e), "a typed error must carry a message"
            return e


# The same, for tests that also take a pytest fixture (one that is safe to share across examples).
FUZZ_WITH_FIXTURE = settings(FUZZ, suppress_health_check=[*FUZZ.suppress_health_check,
                                                           HealthCheck.function_scoped_fixture])  # fmt: skip
