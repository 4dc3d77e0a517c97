"""`uninstall --remove-ca` through the CLI removes exactly the CAs our runs added on each Mac (chosen from the
database's `ca.added` audit records), and leaves a CA that was there before our run (trusted by an MDM
profile) in place, even though that CA is also one of ours in the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.x509 import load_pem_x509_certificate
from sqlalchemy.engine import Engine

from macsim.keychain import cert_der, cert_sha1
from tests.orchestrator.cli_support import cli_env, run
from tests.workers.lab import VERSION, lab

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

HOSTS: list[dict[str, Any]] = [{"name": "mac-mdm", "arch": "x86_64"}, {"name": "mac-bare", "arch": "x86_64"}]


async def test_remove_ca_removes_only_the_cas_our_runs_added_on_each_mac(
    tmp_path: Path, engine: Engine, orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with lab(tmp_path / "lab", engine, HOSTS) as L:
        cli_env(L, engine, monkeypatch)
        lab_ca = load_pem_x509_certificate(L.certs.lab_ca.pem.read_bytes())
        switch_ca = load_pem_x509_certificate(L.certs.switch_ca.pem.read_bytes())
        lab_sha1, switch_sha1 = (cert_sha1(cert_der(c)).upper() for c in (lab_ca, switch_ca))
        mdm = L.fleet.hosts["mac-mdm"].mac
        mdm.keychain.trust_as_profile([lab_ca])  # delivered by MDM before any run of ours

        assert (await run("deploy", "--group", "lab", "--version", VERSION)).exit_code == 0

        def held(name: str) -> set[str]:
            kc = L.fleet.hosts[name].mac.keychain
            return {s for s in (lab_sha1, switch_sha1) if kc.find_cert(s) is not None}

        assert held("mac-mdm") == held("mac-bare") == {lab_sha1, switch_sha1}

        r = await run("uninstall", "--group", "lab", "--remove-ca")
        assert r.exit_code == 0, r.output
        # mac-bare: our run trusted both CAs, so both go
        assert held("mac-bare") == set()
        # mac-mdm: our run trusted only the switch CA; the MDM's lab CA stays, still trusted by its profile
        assert held("mac-mdm") == {lab_sha1}
        assert mdm.keychain.trust_for(lab_sha1, ("profile",)) is not None
        assert mdm.keychain.trust_for(switch_sha1) is None
