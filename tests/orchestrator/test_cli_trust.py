"""CA trust through the real CLI against macsim Macs: a refused trust makes `deploy` exit 4 with the Mac
installed and awaiting trust, `status` counts it, `converge` finishes it once an MDM profile delivered the
trust; an uninstall whose trust removal is refused records the refusal and leaves the CA whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy.engine import Engine

from tests.orchestrator.cli_support import cli_env, run
from tests.workers.lab import lab

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

CLIENT = "/Library/Application Support/1E/Client/1E.Client"


async def test_refused_trust_exits_4_then_converge_finishes(
    tmp_path: Path, engine: Engine, orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = [{"name": "mac-ok"}, {"name": "mac-mdm", "faults": {"trust_refused": True}}]
    async with lab(tmp_path / "lab", engine, hosts) as L:
        cli_env(L, engine, monkeypatch)
        r = await run("deploy", "--group", "lab")
        assert r.exit_code == 4, r.output
        assert "awaiting CA trust" in r.output and "orchestrate certs profile" in r.output
        assert L.fleet.hosts["mac-mdm"].mac.fs.exists(CLIENT)

        r = await run("status", "--json")
        doc = json.loads(r.stdout)
        assert (doc["awaiting_trust"], doc["connected"]) == (1, 1), doc
        outcome = {d["name"]: d["last_outcome"] for d in doc["devices"]}
        assert outcome == {"mac-ok": "succeeded", "mac-mdm": "awaiting_trust"}

        r = await run("converge", "--group", "lab")  # no profile yet: still waiting, still exit 4
        assert r.exit_code == 4, r.output

        certs = [x509.load_pem_x509_certificate(p.pem.read_bytes()) for p in (L.certs.lab_ca, L.certs.switch_ca)]
        L.fleet.hosts["mac-mdm"].mac.keychain.trust_as_profile(certs)  # the MDM delivered the profile
        r = await run("converge", "--group", "lab")
        assert r.exit_code == 0, r.output
        doc = json.loads((await run("status", "--json")).stdout)
        assert (doc["awaiting_trust"], doc["connected"]) == (0, 2), doc


async def test_trust_flag_is_checked_and_skip_never_touches_trust(
    tmp_path: Path, engine: Engine, orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with lab(tmp_path / "lab", engine, [{"name": "mac-ok"}]) as L:
        cli_env(L, engine, monkeypatch)
        r = await run("deploy", "--group", "lab", "--trust", "sometimes")
        assert r.exit_code == 2 and "ssh, profile, skip" in r.output, r.output
        monkeypatch.setenv("ORCHESTRATE_TRUST__MODE", "profile")  # the setting; a flag wins over it
        r = await run("deploy", "--group", "lab", "--trust", "ssh")
        assert r.exit_code == 0, r.output
        assert "add-trusted-cert" in "\n".join(L.commands("mac-ok"))


async def test_uninstall_refused_trust_removal_leaves_the_ca_whole(
    tmp_path: Path, engine: Engine, orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with lab(tmp_path / "lab", engine, [{"name": "mac-1"}]) as L:
        cli_env(L, engine, monkeypatch)
        assert (await run("deploy", "--group", "lab")).exit_code == 0
        mac = L.fleet.hosts["mac-1"].mac
        before = sorted(c.sha1 for c in mac.keychain.certs)
        trusted = sorted(t.sha1 for t in mac.keychain.trust)
        assert len(trusted) == 2
        mac.spec.faults.trust_refused = True  # e.g. the Mac was updated to a macOS that asks
        r = await run("uninstall", "--group", "lab", "--remove-identity", "--remove-ca", "--json")
        assert r.exit_code == 1, r.output
        job = json.loads(r.stdout)["devices"][0]
        assert (job["step"], job["error_type"]) == ("cas", "TrustInteractionNotAllowed"), job
        assert "still in the System keychain with its trust setting" in job["message"]
        assert not mac.fs.exists(CLIENT)  # the client is gone: only the CAs remain, whole
        left = sorted(c.sha1 for c in mac.keychain.certs)
        assert set(trusted) <= set(left) and sorted(t.sha1 for t in mac.keychain.trust) == trusted
        assert len(left) == len(before) - 1  # the identity went
