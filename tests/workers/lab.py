"""A lab for runner tests: a macsim fleet, real artifacts (DMG, CAs, one PFX per Mac), a state database
populated through the controller's own library functions, and a way to create install runs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from cryptography.x509 import load_pem_x509_certificate
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from inventory.formats import loads
from macsim.artifacts.certs import CertArtifacts, write_cert_artifacts
from macsim.artifacts.dmg import write_dmg
from macsim.fleet import Fleet
from macsim.spec import parse_spec
from orchestrator.artifacts import add_artifact
from orchestrator.certs.store import BoxVault, add_cas, import_pfx
from orchestrator.config import Settings, SshSettings
from orchestrator.inventory_store import import_inventory
from orchestrator.secrets import SecretBox, store_secret
from orchestrator.state.models import CaCertificate, Device, DeviceJob, Run, StepRun

VERSION = "8.0.2.5"
SWITCH = "tachyon.lab.test:4000"
BACKGROUND = "https://tachyon.lab.test:443/Background/"


@dataclass
class Lab:
    fleet: Fleet
    engine: Engine
    settings: Settings
    certs: CertArtifacts
    base: Path
    artifact_sha256: str

    def params(self, **over: Any) -> dict[str, Any]:
        with Session(self.engine) as s:
            cas = [c.sha256 for c in s.exec(select(CaCertificate)).all()]
        p: dict[str, Any] = {
            "version": VERSION,
            "switch": SWITCH,
            "background_url": BACKGROUND,
            "artifact_sha256": self.artifact_sha256,
            "method": "install.sh",
            "expected_team_id": None,
            "cache_dmg": False,
            "verify_timeout": 10.0,
            "min_free_bytes": 0,
            "ca_sha256s": cas,
        }
        p.update(over)
        return p

    def create_run(self, names: Sequence[str] | None = None, **over: Any) -> str:
        """An install run with one pending job per device (all devices when names is None)."""
        with Session(self.engine) as s:
            q = select(Device).order_by(col(Device.name))
            devices = [d for d in s.exec(q).all() if names is None or d.name in names]
            run = Run(kind="install", params_json=json.dumps(self.params(**over)), created_by="test")
            s.add(run)
            s.flush()
            for d in devices:
                s.add(DeviceJob(run_id=run.id, device_id=d.id))
            s.commit()
            return run.id

    def jobs(self, run_id: str) -> dict[str, DeviceJob]:
        with Session(self.engine) as s:
            rows = s.exec(select(DeviceJob, Device).where(DeviceJob.run_id == run_id,
                                                          DeviceJob.device_id == Device.id)).all()
            return {d.name: j for j, d in rows}

    def steps(self, run_id: str, device: str) -> dict[str, StepRun]:
        """The latest record of each step of the device's job in the run."""
        job = self.jobs(run_id)[device]
        with Session(self.engine) as s:
            q = select(StepRun).where(StepRun.job_id == job.id).order_by(col(StepRun.started_at))
            return {r.step: r for r in s.exec(q).all()}

    def device(self, name: str) -> Device:
        with Session(self.engine) as s:
            d = s.exec(select(Device).where(Device.name == name)).one()
            return d

    def commands(self, name: str, since: int = 0) -> list[str]:
        """The full command text of every exec the Mac has finished (its `commands.jsonl`), from entry
        `since` on (take `len(lab.commands(name))` as a mark before a run)."""
        path = self.fleet.hosts[name].state_dir / "commands.jsonl"
        if not path.exists():
            return []
        lines = path.read_text().splitlines()[since:]
        return [str(json.loads(line)["command"]) for line in lines if line.strip()]

    def marks(self) -> dict[str, int]:
        """How many commands each Mac has logged so far (pass one to `commands(name, since=...)`)."""
        return {name: len(self.commands(name)) for name in self.fleet.hosts}

    def store_secret(self, name: str, kind: str, value: bytes) -> None:
        """Store an encrypted secret under the lab's key (e.g. a "sudo-password" a device's vars name)."""
        assert self.settings.secret_key is not None
        box = SecretBox(self.settings.secret_key.encode())
        with Session(self.engine) as s:
            store_secret(s, box, name, kind, value)
            s.commit()


def assert_failed_at(lab_: Lab, run_id: str, name: str, step: str, error_type: str) -> str:
    """The device's job failed at `step` with `error_type`, recorded on the job, the step's StepRun and the
    device row (`last_error`); returns the job's error message."""
    job = lab_.jobs(run_id)[name]
    assert (job.status, job.current_step, job.error_type) == ("failed", step, error_type), (
        name, job.status, job.current_step, job.error_type, job.error_message)
    rec = lab_.steps(run_id, name)[step]
    assert (rec.status, rec.error_type) == ("failed", error_type), (name, step, rec.status, rec.error_type)
    dev = lab_.device(name)
    assert dev.last_outcome == "failed" and (dev.last_error or "").startswith(f"{step}: {error_type}: "), (
        name, dev.last_error)
    assert job.error_message
    return job.error_message


def assert_awaiting_trust(lab_: Lab, run_id: str, name: str, error_type: str) -> str:
    """The device's job ended awaiting CA trust at the trust step with `error_type` (recorded on the job, the
    trust StepRun and the device row, whose installed version is the run's); returns the job's message."""
    job = lab_.jobs(run_id)[name]
    assert (job.status, job.current_step, job.error_type) == ("awaiting_trust", "trust", error_type), (
        name, job.status, job.current_step, job.error_type, job.error_message)
    rec = lab_.steps(run_id, name)["trust"]
    assert (rec.status, rec.error_type) == ("failed", error_type), (name, rec.status, rec.error_type)
    dev = lab_.device(name)
    assert dev.last_outcome == "awaiting_trust" and dev.installed_version == VERSION, (name, dev.last_outcome)
    assert (dev.last_error or "").startswith(f"trust: {error_type}: "), (name, dev.last_error)
    assert job.error_message and "orchestrate certs profile" in job.error_message
    return job.error_message


def mac_files(lab_: Lab, name: str, under: str = "/") -> list[str]:
    """Every file on the Mac below `under` (absolute Mac paths)."""
    fs = lab_.fleet.hosts[name].mac.fs
    return list(fs.walk_files(under)) if fs.exists(under) else []


def host_entry(spec: dict[str, Any]) -> dict[str, Any]:
    return {"name": spec["name"], **{k: v for k, v in spec.items() if k != "name"}}


@asynccontextmanager
async def lab(
    tmp_path: Path,
    engine: Engine,
    hosts: Sequence[dict[str, Any]],
    *,
    dmg_size: int | None = None,
    pfx_for: dict[str, str] | None = None,
    ssh: dict[str, Any] | None = None,
    vars_for: dict[str, dict[str, Any]] | None = None,
) -> AsyncIterator[Lab]:
    """Start the fleet and fill the database: inventory, CAs, one PFX per host (or the bad kind named in
    pfx_for: host -> bad kind, e.g. "wrong-case"), the DMG.

    ssh: overrides of the `[ssh]` settings (short timeouts; `known_hosts=None` with `trust_on_first_use`
    to pin keys in the database). vars_for: host -> inventory vars (e.g. `{"sudo_password": NAME}`)."""
    base = tmp_path
    spec = {"state_dir": str(base / "fleet"), "hosts": [host_entry(h) for h in hosts]}
    arts = base / "artifacts"
    arts.mkdir(parents=True, exist_ok=True)
    dmg = write_dmg(arts, VERSION, size_bytes=dmg_size)
    async with Fleet.start(parse_spec(spec), base / "fleet") as fleet:
        names = {h["name"]: fleet.hosts[h["name"]].hostname for h in hosts}
        bad = next(iter(pfx_for), None) if pfx_for else None
        certs = write_cert_artifacts(arts, names, bad_host=bad)
        known = fleet.write_known_hosts(base / "known_hosts")
        settings = Settings(
            data_dir=base / "data",
            database_url=str(engine.url),
            secret_key=Fernet.generate_key().decode(),
            ssh=SshSettings(**{"known_hosts": known, "command_timeout": 60.0, "concurrency": 50, **(ssh or {})}),
        )
        inv = {
            "groups": [{"name": "lab"}],
            "hosts": [
                {
                    "name": h["name"],
                    "address": fleet.hosts[h["name"]].address,
                    "port": fleet.hosts[h["name"]].port,
                    "user": fleet.hosts[h["name"]].spec.user,
                    "auth": {"key": str(fleet.client_key_path)},
                    "groups": ["lab"],
                    **({"vars": vars_for[h["name"]]} if vars_for and h["name"] in vars_for else {}),
                }
                for h in hosts
            ],
        }
        box = SecretBox(settings.secret_key.encode())  # type: ignore[union-attr]
        with Session(engine) as s:
            import_inventory(s, loads(json.dumps(inv), "inventory.yaml"), "test")
            add_cas(s, [load_pem_x509_certificate(p.pem.read_bytes()) for p in (certs.lab_ca, certs.switch_ca)])
            for name in names:
                pfx = certs.bad_pfx[pfx_for[name]] if pfx_for and name in pfx_for else certs.host_pfx[name]
                import_pfx(s, BoxVault(box), pfx.read_bytes(), certs.password_for(pfx).encode(), str(pfx),
                           now=datetime.now(UTC), device_name=name)
            art, _ = add_artifact(s, settings.data_dir, dmg)
            s.commit()
            sha = art.sha256
        yield Lab(fleet, engine, settings, certs, base, sha)
