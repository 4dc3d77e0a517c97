"""`orchestrate demo` end to end: a real simulated fleet, real SSH, SQLite, the real CLI commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from orchestrator.console import Console
from orchestrator.demo import DEMO_VERSION, demo_hosts, run_demo
from orchestrator.state.db import create_db_engine
from orchestrator.state.models import ClientCertificate, Device, DeviceJob, Run, StepRun


def test_demo_hosts_mix_architectures() -> None:
    hosts = demo_hosts(6)
    assert {(h.arch, h.rosetta) for h in hosts} == {("arm64", True), ("x86_64", False), ("arm64", False)}
    assert len({h.name for h in hosts}) == 6


async def test_demo_runs_and_records_the_fleet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = await run_demo(Console(), 4, tmp_path / "demo")
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    # the wrong-case certificate is caught with the exact expected name
    assert "only the case differs" in out.err
    assert "lab-mbp-03.local" in out.err
    # facts came over SSH: every Mac reported its host name, and Rosetta was probed, not copied from the spec
    for name in ("lab-mbp-01", "lab-imac-02", "lab-mbp-03", "lab-mbp-04"):
        assert f"{name}.local" in out.out
    assert "missing" in out.out  # lab-mbp-03 is Apple silicon without Rosetta
    engine = create_db_engine(f"sqlite:///{tmp_path / 'demo' / 'data' / 'macfleet.db'}")
    with Session(engine) as s:
        assert len(s.exec(select(Device)).all()) == 4
        assert len(s.exec(select(ClientCertificate).where(ClientCertificate.active)).all()) == 4
        # deploy: every Mac but the wrong-case one is installed and connected; that one was refused before
        # any connection (no step ran on it); the second deploy changed nothing anywhere
        devices = {d.name: d for d in s.exec(select(Device)).all()}
        for name in ("lab-mbp-01", "lab-imac-02", "lab-mbp-04"):
            assert (devices[name].installed_version, devices[name].connected) == (DEMO_VERSION, True), name
        assert devices["lab-mbp-03"].installed_version is None
        first, second = s.exec(select(Run).order_by(Run.created_at)).all()
        assert (first.kind, first.status, second.status) == ("install", "failed", "failed")
        bad = s.exec(select(DeviceJob).where(DeviceJob.run_id == first.id,
                                             DeviceJob.device_id == devices["lab-mbp-03"].id)).one()
        assert (bad.status, bad.error_type) == ("failed", "HostnameMismatch")
        assert s.exec(select(StepRun).where(StepRun.job_id == bad.id)).all() == []
        first_steps = s.exec(select(StepRun).join(DeviceJob).where(DeviceJob.run_id == first.id)).all()
        assert any(st.status == "changed" for st in first_steps)
        again = s.exec(select(StepRun).join(DeviceJob).where(DeviceJob.run_id == second.id)).all()
        assert again and {st.status for st in again} <= {"ok", "noop"}, sorted({(st.step, st.status) for st in again})
    assert "resume with" not in out.out
    assert "changed nothing on any Mac" in out.out
    # no PFX password reached the output
    passwords = (tmp_path / "demo" / "artifacts" / "pfx-passwords.json").read_text()
    import json

    for pw in json.loads(passwords).values():
        assert pw not in out.out and pw not in out.err
