"""A real rollback through the CLI: the new version installs and starts, then fails verification (the Switch
turns that client version away: macsim's `switch_rejects_versions` fault), and `upgrade --rollback` puts the
Mac back on the version it had, with the identity's key access re-granted to the re-installed binary. The
evidence is the Mac's own state (receipt, binary, keychain ACL, client log), not only the database."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from macsim.artifacts.dmg import write_dmg
from macsim.client1e.daemon import binary_info
from macsim.client1e.receipts import read_receipt
from tests.orchestrator.cli_support import cli_env, last_log, run
from tests.workers.lab import SWITCH, VERSION, lab

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

NEW = "8.1.0.7"
HOSTS: list[dict[str, Any]] = [{"name": "mac-intel", "arch": "x86_64"}]
BINARY = "/Library/Application Support/1E/Client/1E.Client"
PKG_ID = "com.1e.pkg.1E.Client"


async def test_upgrade_that_fails_verification_rolls_back_to_the_previous_version_with_key_access(
    tmp_path: Path, engine: Engine, orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with lab(tmp_path / "lab", engine, HOSTS) as L:
        cli_env(L, engine, monkeypatch)
        assert (await run("deploy", "--group", "lab", "--version", VERSION)).exit_code == 0
        assert (await run("artifact", "add", str(write_dmg(L.base / "artifacts", NEW)))).exit_code == 0
        L.fleet.set_faults("mac-intel", switch_rejects_versions=[NEW])
        mac = L.fleet.hosts["mac-intel"].mac
        mark = len(L.commands("mac-intel"))

        r = await run("upgrade", "--limit", "mac-intel", "--to", NEW, "--rollback", "--json")
        assert r.exit_code == 1, r.output
        (dev,) = json.loads(r.stdout)["devices"]
        assert dev["status"] == "rolled_back", dev
        # the new version really went in and ran: its own client said the Switch refused it
        assert dev["error_type"] == "NotConnected" and f"client version {NEW} is not supported" in dev["message"]
        assert f"rolled back to {VERSION}" in dev["message"], dev
        installs = [c for c in L.commands("mac-intel", since=mark) if "install.sh" in c and "test " not in c]
        assert len(installs) == 2, installs  # the upgrade's, then the rollback's

        # the Mac is on the previous version: receipt and binary
        receipt = read_receipt(mac.fs, PKG_ID)
        assert receipt is not None and receipt.version == VERSION
        binary = mac.fs.read_bytes(BINARY)
        assert binary_info(binary)["version"] == VERSION
        # key access re-granted to that binary (by -T: path and hash), not left on the new one's
        cdhash = hashlib.sha256(binary).hexdigest()
        (ident,) = mac.keychain.identities()
        assert not ident.key.allow_all
        assert ident.key.allows(BINARY, cdhash)
        assert f"Connected to Switch {SWITCH}" in last_log(L, "mac-intel")
        # and the database says so
        assert L.device("mac-intel").installed_version == VERSION
