"""Every fact parser in tasks/ fed arbitrary text, as a broken or hostile Mac could answer: a value or
FactsError, nothing else, in bounded time and memory."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks import facts, logs
from tasks.model import ProbeOutput
from tests.fuzz.conftest import FUZZ, TIME_LIMIT, value_or

pytestmark = pytest.mark.timeout(TIME_LIMIT)

# Fragments of real tool output (see tests/tasks/fixtures/facts/), so the parsers get past their first checks.
_WORDS = [
    "ProductVersion:", "ProductName:", "macOS", "14.5", "version:", "package-id:", "location:", "install-time:",
    "com.1e.pkg.1E.Client", "arm64", "x86_64", "SHA-1 hash:", "SHA-256 hash:", "keychain:", '"alis"<blob>=',
    '"labl"<blob>=', "valid identities found", "matching identities", "1)", "state = running", "pid = ",
    "last exit code = ", "program = ", "path = ", "Number of trusted certs =", "Cert 0:", "Trust Settings",
    "Filesystem", "1024-blocks", "Used", "Available", "Capacity", "/dev/disk3s1s1", "/", "%", "=", "{", "}",
    "1E Client starting", "Connected to Switch", "Switch=", "BackgroundChannelUrl=", '"', "0x", "\t",
    "-", ":", ",", "  ", "9" * 30, "-1", "ABCDEF0123456789" * 3, "é", "\x00", "\r",
]  # fmt: skip
_line = st.lists(st.one_of(st.sampled_from(_WORDS), st.text(max_size=12)), max_size=8).map(" ".join)
TEXT = st.one_of(st.text(max_size=2000), st.lists(_line, max_size=40).map("\n".join))
OUTPUT = st.builds(
    ProbeOutput,
    argv=st.just(("probe",)),
    exit_status=st.one_of(st.none(), st.integers(-1, 3), st.integers(min_value=-(2**31), max_value=2**31)),
    stdout=TEXT,
    stderr=st.text(max_size=200),
)

PARSERS: list[Callable[[ProbeOutput], Any]] = [
    fn
    for name, fn in inspect.getmembers(facts, inspect.isfunction)
    if name.startswith("parse_") and list(inspect.signature(fn).parameters) == ["out"]
]


def test_every_single_probe_parser_is_fuzzed() -> None:
    assert len(PARSERS) >= 15, [p.__name__ for p in PARSERS]


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@FUZZ
@given(out=OUTPUT)
def test_fact_parser_returns_a_value_or_facts_error(
    parser: Callable[[ProbeOutput], Any], out: ProbeOutput
) -> None:
    value_or((facts.FactsError,), lambda: parser(out))


@FUZZ
@given(data=st.data())
def test_all_mac_facts_at_once(data: st.DataObject) -> None:
    outputs = {name: data.draw(OUTPUT, label=name) for name, _ in facts.mac_fact_commands()}
    value_or((facts.FactsError,), lambda: facts.parse_mac_facts(outputs))
    client = {name: data.draw(OUTPUT, label=name) for name, _ in facts.client_fact_commands()}
    value_or((facts.FactsError,), lambda: facts.parse_client_facts(client))
    value_or((facts.FactsError,), lambda: logs.parse_logs({f"{logs.LOG_PREFIX}client": data.draw(OUTPUT)}))
