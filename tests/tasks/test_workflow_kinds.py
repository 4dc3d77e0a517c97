"""What each workflow's kind means to the runner, asked of the workflow (tasks/model.py `Workflow`): its
params from a run and a device, the device row after a job, the facts that become columns, rollback, the CAs
it trusted, sample params for the capture kit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.state.models import JobStatus
from tasks.facts import ClientFacts, MacFacts
from tasks.install import INSTALL, CaRef, DmgRef, IdentityRef
from tasks.model import KEEP, DeviceUpdate, JobInputs, Outcome, ParamsError, Read, mac_fact_columns
from tasks.probes import sample_params
from tasks.registry import PARAMS, WORKFLOWS, workflow_for
from tasks.uninstall import UNINSTALL

from .test_install_units import PARAMS as INSTALL_PARAMS

FIXTURES = Path(__file__).parent / "fixtures"
DMG = DmgRef("8.0.2.5", "ab" * 32, 1000, "1e.client-macOS_v8.0.2.5.dmg")
CA = CaRef("cc" * 32, "DD" * 20, "CN=Root", "Root", "ca-cccc.pem")
IDENTITY = IdentityRef("AA" * 20, "bb" * 32, ("mac.local",))
RUN_PARAMS: dict[str, Any] = {
    "version": "8.0.2.5", "switch": "s:4000", "background_url": "https://s/Background",
    "pairs": [["SWITCH", "t:4000"]], "lines": 50, "daemon": True,
    "remove_identity": True, "remove_ca": True,
}  # fmt: skip


def job_inputs(**over: Any) -> JobInputs:
    base: dict[str, Any] = {
        "run_id": "r1", "device_name": "mac-1", "run_params": RUN_PARAMS, "private_dir": "/private/tmp/macfleet-r1",
        "dmg": DMG, "cas": (CA,), "identity": IDENTITY, "cas_added": ("ee" * 20,),
    }  # fmt: skip
    return JobInputs(**(base | over))


def mac_facts(case: str = "install/verify/finished") -> MacFacts:
    return MacFacts.from_json(json.loads((FIXTURES / f"{case}.json").read_text())["facts"])


@pytest.mark.parametrize("kind", sorted(WORKFLOWS))
def test_every_workflow_builds_its_registered_params(kind: str) -> None:
    params = WORKFLOWS[kind].build_params(job_inputs())
    assert type(params) is PARAMS[kind]
    assert params.run_id == "r1"
    assert PARAMS[kind].from_json(params.as_json()) == params  # what a Celery message would carry
    sample = WORKFLOWS[kind].sample_params(None)
    assert type(sample) is PARAMS[kind]


def test_install_params_from_the_run_and_device() -> None:
    p = INSTALL.build_params(job_inputs(run_params=RUN_PARAMS | {"cache_dmg": True, "method": "pkg"}))
    assert (p.version, p.switch, p.dmg, p.identity, p.cas) == ("8.0.2.5", "s:4000", DMG, IDENTITY, (CA,))
    assert (p.method, p.cache_dir, p.trust_mode) == ("pkg", "/Library/Caches/macfleet", "ssh")
    with pytest.raises(ParamsError, match="mac-1 has no client certificate") as e:
        INSTALL.build_params(job_inputs(identity=None))
    assert e.value.error_type == "NoCertificate"
    with pytest.raises(ParamsError) as e:
        INSTALL.build_params(job_inputs(dmg=None))
    assert e.value.error_type == "ArtifactMissing"
    assert INSTALL.reads == {Read.IDENTITY}


def test_uninstall_params_remove_only_what_the_run_asks_and_ours() -> None:
    p = UNINSTALL.build_params(job_inputs())
    assert (p.remove_identity, p.identity_sha1, p.remove_ca_sha1s) == (True, "aa" * 20, ("ee" * 20,))
    keep = UNINSTALL.build_params(job_inputs(run_params={}))
    assert (keep.remove_identity, keep.identity_sha1, keep.remove_ca_sha1s) == (False, None, ())
    no_cert = UNINSTALL.build_params(job_inputs(identity=None))
    assert (no_cert.remove_identity, no_cert.identity_sha1) == (False, None)
    with pytest.raises(ParamsError, match="uninstall parameters for mac-1: not a SHA-1") as e:
        UNINSTALL.build_params(job_inputs(cas_added=("nope",)))
    assert e.value.error_type == "BadParameters"
    assert UNINSTALL.reads == {Read.IDENTITY, Read.CAS_ADDED}


def test_reconfigure_bad_pairs_are_bad_parameters() -> None:
    with pytest.raises(ParamsError, match="reconfigure parameters for mac-1") as e:
        WORKFLOWS["reconfigure"].build_params(job_inputs(run_params={"pairs": [["NOPE", "x"]]}))
    assert e.value.error_type == "BadParameters"


S, U, A, F = Outcome.SUCCEEDED, Outcome.UNVERIFIED, Outcome.AWAITING_TRUST, Outcome.FAILED
# kind, outcome, connected (what verify saw) -> (installed_version, connected) written to the row
ROWS = [
    ("install", S, None, "8.0.2.5", True),
    ("upgrade", U, True, "8.0.2.5", None),
    ("install", A, None, "8.0.2.5", False),
    ("install", F, False, KEEP, False),
    ("install", F, None, KEEP, KEEP),
    ("uninstall", S, None, None, False),
    ("uninstall", U, None, KEEP, None),
    ("uninstall", F, True, KEEP, True),
    ("stop", S, True, KEEP, False),
    ("start", S, True, KEEP, True),
    ("start", S, None, KEEP, KEEP),
    ("restart", U, None, KEEP, None),
    ("check", F, False, KEEP, False),
    ("reconfigure", A, True, KEEP, KEEP),
    ("logs", S, None, KEEP, KEEP),
]


@pytest.mark.parametrize(("kind", "outcome", "seen", "version", "connected"), ROWS)
def test_device_row_after_a_job(kind: str, outcome: Outcome, seen: bool | None, version: Any, connected: Any) -> None:
    wf = WORKFLOWS[kind]
    got = wf.device_update(outcome, seen, wf.build_params(job_inputs()))
    assert got == DeviceUpdate(installed_version=version, connected=connected)


def test_update_columns_leave_what_is_kept() -> None:
    assert DeviceUpdate(installed_version=None).columns() == {"installed_version": None}
    assert DeviceUpdate(connected=False).columns() == {"connected": False}
    assert DeviceUpdate().columns() == {}


def test_outcomes_are_job_statuses() -> None:
    assert {o.value for o in Outcome} <= {s.value for s in JobStatus}


def test_install_rollback() -> None:
    rb = INSTALL.rollback
    assert rb is not None
    assert rb.after == {"install", "identity", "start", "verify"}
    facts = mac_facts("install/verify/other-version-installed")
    assert facts.client_version not in (None, INSTALL_PARAMS.version)
    assert rb.previous(facts, INSTALL_PARAMS) == facts.client_version
    assert rb.previous(facts, dataclasses.replace(INSTALL_PARAMS, version=facts.client_version)) is None
    back = rb.params(INSTALL_PARAMS, DmgRef("7.1", "ef" * 32, 9, "old.dmg"))
    assert (back.version, back.dmg.file_name, rb.target(INSTALL_PARAMS)) == ("7.1", "old.dmg", "8.0.2.5")
    assert all(wf.rollback is None for kind, wf in WORKFLOWS.items() if kind not in ("install", "upgrade"))


def test_trusted_cas_are_the_trust_steps_commands_on_our_pems() -> None:
    pem = INSTALL_PARAMS.ca_path(INSTALL_PARAMS.cas[0])
    executed = [
        ("identity", ("security", "add-trusted-cert", pem)),  # not the trust step
        ("trust", ("security", "verify-cert", "-c", pem)),  # a probe, not an add
        ("trust", ("security", "add-trusted-cert", "-d", "-r", "trustRoot", "/elsewhere.pem")),
    ]
    assert INSTALL.trusted_cas(INSTALL_PARAMS, executed) == ()
    added = [("trust", ("security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k", "K", pem))]
    assert INSTALL.trusted_cas(INSTALL_PARAMS, added) == INSTALL_PARAMS.cas
    assert UNINSTALL.trusted_cas(UNINSTALL.build_params(job_inputs()), added) == ()


def test_fact_columns() -> None:
    facts = mac_facts()
    assert mac_fact_columns(facts) == {
        "reported_hostname": facts.hostname, "arch": facts.arch, "macos_version": facts.macos_version,
        "installed_version": facts.client_version,
    }  # fmt: skip
    client = ClientFacts(mac=facts, pkg_location=None, pkg_files=(), present=())
    assert WORKFLOWS["uninstall"].fact_columns(client) == mac_fact_columns(facts)


def test_converge_runs_install_and_unknown_kinds_none() -> None:
    assert workflow_for("converge") is INSTALL
    assert workflow_for("upgrade") is WORKFLOWS["upgrade"]
    assert workflow_for("bogus") is None


def test_sample_params_from_the_macs_facts() -> None:
    facts = mac_facts()
    install = sample_params("install", facts)
    assert install.version == facts.client_version
    client = ClientFacts(mac=facts, pkg_location=None, pkg_files=(), present=())
    uninstall = sample_params("uninstall", client)
    assert uninstall.identity_sha1 == (facts.identities[0].sha1 if facts.identities else "0" * 40)
