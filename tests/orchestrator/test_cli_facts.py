"""`orchestrate facts HOST [--capture DIR]` end to end against a macsim Mac the CLI deployed: the facts as
parsed; then a capture whose fixtures pass the real-fixtures check (tests/tasks/real_fixtures.py, the
logic MACFLEET_REAL_FIXTURES runs), cover every probe the workflows use, are redacted consistently and
keep nothing of the Mac's names, serial number, hardware UUID, user or certificate hashes."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from tasks.probes import PARSERS, fact_probes, fixture_name
from tests.orchestrator.cli_support import cli_env, run
from tests.tasks.real_fixtures import check_fixture, fixture_files
from tests.workers.lab import VERSION, Lab, lab

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

HOSTS: list[dict[str, Any]] = [
    {
        "name": "cap-mac",
        "local_host_name": "Cap-Mac",
        "host_name": "cap-mac.corp.example.com",
        "computer_name": "Jane Doe's Mac mini",
        "user": "jdoe",
        "arch": "arm64",
        "rosetta": True,
        "macos_version": "14.5",
        "macos_build": "23F79",
    }
]




def _hashes(L: Lab) -> set[str]:
    """SHA-1 and SHA-256 (hex) of every certificate in the Mac's System keychain."""
    kc = L.fleet.hosts["cap-mac"].mac.keychain
    out = set()
    for c in kc.certs:
        der = base64.b64decode(c.der_b64)
        out |= {hashlib.sha1(der).hexdigest(), hashlib.sha256(der).hexdigest()}
    return out


def _expected(directory: Path, probe: str) -> Any:
    (path,) = (directory / probe).glob("*.json")
    return json.loads(path.read_text())["expected"]


async def test_facts_and_capture(
    tmp_path: Path, engine: Engine, orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with lab(tmp_path / "lab", engine, HOSTS) as L:
        cli_env(L, engine, monkeypatch)
        r = await run("deploy", "--group", "lab", "--version", VERSION)
        assert r.exit_code == 0, r.output
        spec = L.fleet.hosts["cap-mac"].spec

        # without --capture: the parsed facts, as they are (the operator's own view: nothing redacted)
        mark = len(L.commands("cap-mac"))
        r = await run("facts", "cap-mac", "--json")
        assert r.exit_code == 0, r.output
        assert len(L.commands("cap-mac")) - mark == 1, "the facts are one exec"
        facts = json.loads(r.stdout)["facts"]
        assert facts["hostname"] == "cap-mac.corp.example.com" and facts["local_host_name"] == "Cap-Mac"
        assert facts["client_version"] == VERSION and facts["job"]["running"]
        r = await run("facts", "cap-mac")
        assert r.exit_code == 0 and "cap-mac.corp.example.com" in r.output and "client_version" in r.output
        r = await run("facts", "nosuch")
        assert r.exit_code == 2 and "no device named 'nosuch'" in r.output

        # --capture: one fixture per probe, every one readable by its parser
        out = tmp_path / "captured"
        mark = len(L.commands("cap-mac"))
        r = await run("facts", "cap-mac", "--capture", str(out), "--json")
        assert r.exit_code == 0, r.output
        report = json.loads(r.stdout)
        assert len(L.commands("cap-mac")) - mark <= 2, "a capture costs at most two execs"
        files = fixture_files(out)
        assert {p.stem for p in files} == {"macos-14.5-arm64"}
        for path in files:
            check_fixture(path)
        probes = {p.parent.name for p in files}
        assert {fixture_name(n) for n, _ in fact_probes()} | {"pkg_location"} <= probes
        assert probes <= set(PARSERS) and all(f["parsed"] for f in report["fixtures"])
        source = json.loads(files[0].read_text())["source"]
        assert source.startswith("captured on macOS 14.5 23F79, ")

        # redacted: nothing of the names, serial, UUID, user or certificate hashes, not even hex-encoded
        text = "\n".join(p.read_text() for p in files).lower()
        secrets = {
            "cap-mac", "corp.example.com", "jane doe", "jdoe", spec.effective_serial_number.lower(),
            spec.effective_hardware_uuid.lower(), "tachyon.lab.test", *_hashes(L),
        }  # fmt: skip
        assert len(_hashes(L)) >= 6  # the identity and both CAs, SHA-1 and SHA-256 each
        left = sorted(s for s in secrets if s in text or s.encode().hex() in text)
        assert not left, f"still in the capture: {left}"
        assert report["redacted"]["host"] >= 2 and report["redacted"]["hex"] >= 6

        # ... consistently: equal things are still equal, in the case they had
        hostname = _expected(out, "hostname")
        assert hostname == "host1.domain1.example"
        assert _expected(out, "local_host_name") == "Host1"
        (ident,) = _expected(out, "identities")
        assert ident["label"] == hostname and ident["valid"]
        certs = {c["sha1"]: c for c in _expected(out, "certificates")}
        assert ident["sha1"] in certs and certs[ident["sha1"]]["label"] == hostname
        assert _expected(out, "conf")["Switch"] == "host2.domain2.example:4000"
        assert (
            "connected to switch host2.domain2.example:4000" in " ".join(_expected(out, "client_log")).lower()
        )
