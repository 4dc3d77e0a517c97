"""CA trust on macOS 11+ through the local driver: a refused (or unanswered) trust change leaves the Mac
installed, configured and started, the device awaiting trust; `converge` finishes it once an MDM profile has
delivered the trust; `--trust profile` never tries over SSH; `--trust skip` never touches trust."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from sqlalchemy.engine import Engine
from sqlmodel import Session

from orchestrator.state.models import Run
from tests.workers.lab import Lab, assert_awaiting_trust, lab, mac_files
from workers.local import drive

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

SSH: dict[str, Any] = {"connect_timeout": 2.0, "command_timeout": 30.0, "keepalive_interval": 1.0,
                       "keepalive_count_max": 2}  # fmt: skip
MAC = "mac-1"
CLIENT_BIN = "/Library/Application Support/1E/Client/1E.Client"


def _job_seconds(L: Lab, run: str) -> float:
    job = L.jobs(run)[MAC]
    assert job.started_at is not None and job.ended_at is not None
    return (job.ended_at - job.started_at).total_seconds()


def _installed_and_started(L: Lab, run: str) -> None:
    steps = {n: s.status for n, s in L.steps(run, MAC).items()}
    assert steps["install"] == "changed" and steps["identity"] == "changed" and steps["start"] == "changed", steps
    assert steps["verify"] == "skipped" and steps["cleanup"] == "changed", steps
    mac = L.fleet.hosts[MAC].mac
    assert mac.fs.exists(CLIENT_BIN)
    assert [f for f in mac_files(L, MAC) if f.endswith(".p12") or "/macfleet-" in f] == []


def _deliver_profile(L: Lab) -> None:
    """What an MDM does with the `certs profile` payload: the CAs land trusted in the System keychain."""
    certs = [x509.load_pem_x509_certificate(p.pem.read_bytes()) for p in (L.certs.lab_ca, L.certs.switch_ca)]
    L.fleet.hosts[MAC].mac.keychain.trust_as_profile(certs)


def _as_converge(L: Lab, run: str) -> None:
    with Session(L.engine) as s:
        row = s.get(Run, run)
        assert row is not None
        row.kind = "converge"
        s.add(row)
        s.commit()


async def test_refused_trust_installs_awaits_and_converge_finishes(tmp_path: Path, engine: Engine) -> None:
    async with lab(tmp_path, engine, [{"name": MAC, "faults": {"trust_refused": True}}], ssh=SSH) as L:
        run = L.create_run()
        outcome = await drive(L.engine, L.settings, run)
        assert outcome.counts == {"awaiting_trust": 1}, outcome.failed
        msg = assert_awaiting_trust(L, run, MAC, "TrustInteractionNotAllowed")
        assert "no user interaction was possible" in msg
        _installed_and_started(L, run)
        assert _job_seconds(L, run) < 30
        texts = "\n".join(L.commands(MAC))
        assert "add-trusted-cert" in texts and "trust-watchdog" in texts

        # nothing changes while the profile has not come: converge finds it still awaiting
        again = L.create_run()
        _as_converge(L, again)
        await drive(L.engine, L.settings, again)
        assert_awaiting_trust(L, again, MAC, "TrustInteractionNotAllowed")

        _deliver_profile(L)
        done = L.create_run()
        _as_converge(L, done)
        outcome = await drive(L.engine, L.settings, done)
        assert outcome.counts == {"succeeded": 1}, outcome.failed
        steps = L.steps(done, MAC)
        assert steps["trust"].status == "noop" and steps["verify"].status == "ok"
        assert steps["install"].status == "noop"
        dev = L.device(MAC)
        assert (dev.last_outcome, dev.connected, dev.last_error) == ("succeeded", True, None)


async def test_a_trust_dialog_does_not_hang_the_run(tmp_path: Path, engine: Engine) -> None:
    async with lab(tmp_path, engine, [{"name": MAC, "faults": {"trust_dialog": True}}], ssh=SSH) as L:
        run = L.create_run()
        outcome = await drive(L.engine, L.settings, run)
        assert outcome.counts == {"awaiting_trust": 1}, outcome.failed
        msg = assert_awaiting_trust(L, run, MAC, "TrustTimeout")
        assert "no answer within 10 s" in msg
        _installed_and_started(L, run)
        assert _job_seconds(L, run) < 30  # two roots, each bounded at 10 s


async def test_profile_mode_never_tries_over_ssh(tmp_path: Path, engine: Engine) -> None:
    async with lab(tmp_path, engine, [{"name": MAC}], ssh=SSH) as L:
        run = L.create_run(trust_mode="profile")
        outcome = await drive(L.engine, L.settings, run)
        assert outcome.counts == {"awaiting_trust": 1}, outcome.failed
        assert_awaiting_trust(L, run, MAC, "TrustNotDelivered")
        _installed_and_started(L, run)
        texts = "\n".join(L.commands(MAC))
        assert "verify-cert" in texts and "add-trusted-cert" not in texts
        assert L.fleet.hosts[MAC].mac.keychain.trust == []

        _deliver_profile(L)
        done = L.create_run(trust_mode="profile")
        _as_converge(L, done)
        outcome = await drive(L.engine, L.settings, done)
        assert outcome.counts == {"succeeded": 1}, outcome.failed


async def test_skip_mode_never_touches_trust(tmp_path: Path, engine: Engine) -> None:
    hosts = [{"name": MAC, "faults": {"trust_refused": True}}]
    async with lab(tmp_path, engine, hosts, ssh=SSH) as L:
        _deliver_profile(L)  # trust arranged outside macfleet; skip neither checks nor changes it
        run = L.create_run(trust_mode="skip")
        outcome = await drive(L.engine, L.settings, run)
        assert outcome.counts == {"succeeded": 1}, outcome.failed
        assert L.steps(run, MAC)["trust"].status == "noop"
        texts = "\n".join(L.commands(MAC))
        assert "add-trusted-cert" not in texts and "verify-cert" not in texts and "ca-" not in texts


async def test_an_intermediate_is_added_without_a_trust_setting(tmp_path: Path, engine: Engine) -> None:
    from macsim.artifacts.certs import _ca
    from orchestrator.certs.store import add_cas

    issuing, _ = _ca("macfleet Issuing CA", issuer=_ca("macfleet Offline Root CA"), path_len=0)
    async with lab(tmp_path, engine, [{"name": MAC}], ssh=SSH) as L:
        with Session(L.engine) as s:
            add_cas(s, [issuing])
            s.commit()
        run = L.create_run()
        outcome = await drive(L.engine, L.settings, run)
        assert outcome.counts == {"succeeded": 1}, outcome.failed
        texts = "\n".join(L.commands(MAC))
        assert texts.count("add-certificates") == 1 and texts.count("add-trusted-cert") == 2
        kc = L.fleet.hosts[MAC].mac.keychain
        sha1 = issuing.fingerprint(hashes.SHA1()).hex().upper()
        assert kc.find_cert(sha1) is not None and kc.trust_for(sha1, ("admin", "user", "profile")) is None
        assert len(kc.trust) == 2  # the two roots only

        marks = L.marks()
        again = L.create_run()
        await drive(L.engine, L.settings, again)
        assert L.steps(again, MAC)["trust"].status == "noop"
        assert "add-certificates" not in "\n".join(L.commands(MAC, since=marks[MAC]))
