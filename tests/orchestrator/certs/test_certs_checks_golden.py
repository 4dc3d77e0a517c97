"""Golden fixtures for check_client_cert: one JSON file a case (facts in, verdict out)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from orchestrator.certs.checks import ClientCertFacts, check_client_cert
from orchestrator.certs.x509info import CertFacts
from tasks.hostnames import DEFAULT_NAME_RULE, MacNames

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "check_client_cert").glob("*.json"))


def test_there_are_fixtures() -> None:
    assert len(FIXTURES) >= 20


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_check_client_cert_golden(path: Path) -> None:
    case = json.loads(path.read_text())
    facts = None if case["facts"] is None else ClientCertFacts.from_json(case["facts"])
    verdict = check_client_cert(
        facts,
        case["expected_hostname"],
        [CertFacts.from_json(c) for c in case["known_cas"]],
        datetime.fromisoformat(case["now"]),
        case["warn_days"],
        # live-* cases: the Mac's probed names and the [certs] name_rule (tasks/hostnames)
        MacNames(**case["names"]) if "names" in case else None,
        case.get("name_rule", DEFAULT_NAME_RULE),
    )
    want = case["verdict"]
    assert str(verdict.status) == want["status"]
    assert verdict.reason == want["reason"]
    assert [str(f.status) for f in verdict.findings] == want["findings"]
    assert verdict.expected_hostname == case["expected_hostname"]


def test_missing_fact_is_an_error() -> None:
    case = json.loads(FIXTURES[0].read_text())
    del case["facts"]["cert"]["eku"]
    with pytest.raises(KeyError, match="eku"):
        ClientCertFacts.from_json(case["facts"])


def test_facts_round_trip() -> None:
    case = json.loads((FIXTURES[0].parent / "ok.json").read_text())
    facts = ClientCertFacts.from_json(case["facts"])
    assert ClientCertFacts.from_json(facts.to_json()) == facts
