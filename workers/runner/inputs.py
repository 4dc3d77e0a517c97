"""From database rows to `DeviceWork`: SSH target, credentials, host-key policy, sudo mode, workflow
parameters and the materials a plan names (DMG, the device's PFX re-wrapped with a one-time password,
CA certificates, the `security -i` input).

Secrets are decrypted here, at the edge, only when a plan needs them, and registered with the device's
redactor so that no record, event or message can carry them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlmodel import Session, col, select

from orchestrator.certs.pfx import one_time_password, rewrap_for_macos
from orchestrator.certs.store import BoxVault, active_certificate, load_identity
from orchestrator.config import Settings
from orchestrator.redact import LOG_REDACTOR, Redactor
from orchestrator.secrets import SecretBox, SecretNotFound, load_secret
from orchestrator.state.models import Artifact, AuditEvent, CaCertificate, Device, DeviceJob, HostKeyPin, Run
from tasks.hostnames import DEFAULT_NAME_RULE
from tasks.install import CaRef, DmgRef, IdentityRef, InstallParams, identity_import_stdin
from tasks.model import Workflow
from tasks.registry import WORKFLOWS, params_from_json
from workers.runner.device import DeviceWork, Materials
from workers.ssh import NOPASSWD, HostKeyPolicy, SshAuth, SshTarget, SudoMode

INSTALL_KINDS = ("install", "upgrade", "converge")  # runs of the install workflow (and its params)
CA_ADDED = "ca.added"  # audit action: our run trusted this CA on this device (uninstall --remove-ca may undo)
CACHE_DIR = "/Library/Caches/macfleet"


class InputError(ValueError):
    """A device cannot be worked on as configured (message says what to fix); recorded on its job."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class RunInputs:
    run_id: str
    kind: str
    params: dict[str, Any]
    workflow: Workflow
    dmg_path: Path | None
    dmg: DmgRef | None
    cas: tuple[tuple[CaRef, bytes], ...]

    @property
    def private_dir(self) -> str:
        return f"/private/tmp/macfleet-{self.run_id[:12]}"


def share(secret: bytes, shared: list[bytes]) -> None:
    """Mask secret in every log line of this process until the job ends (`Materials.release`)."""
    LOG_REDACTOR.add(secret)
    shared.append(secret)


def workflow_for(kind: str) -> Workflow | None:
    """The workflow a run of this kind executes (converge re-runs install: every step re-checks the Mac)."""
    return WORKFLOWS.get("install" if kind == "converge" else kind)


def load_run_inputs(session: Session, run_or_id: str | Run) -> RunInputs:
    """The run's shared inputs (a Run object that is not stored serves dry runs)."""
    run = session.get(Run, run_or_id) if isinstance(run_or_id, str) else run_or_id
    if run is None:
        raise InputError("UnknownRun", f"no run {run_or_id}")
    workflow = workflow_for(run.kind)
    if workflow is None:
        raise InputError(
            "UnknownWorkflow", f"run {run.id} is a {run.kind!r} run, which this worker cannot run"
        )
    params = json.loads(run.params_json)
    dmg_path: Path | None = None
    dmg: DmgRef | None = None
    if params.get("artifact_sha256"):
        art = session.exec(select(Artifact).where(Artifact.sha256 == params["artifact_sha256"])).first()
        if art is None:
            raise InputError(
                "ArtifactMissing",
                f"the run's DMG {params['artifact_sha256'][:12]} is no longer in the artifact store: "
                "add it again with `orchestrate artifact add`",
            )
        dmg_path = Path(art.path)
        dmg = DmgRef(version=art.version, sha256=art.sha256, size=art.size, file_name=art.filename)
    cas: list[tuple[CaRef, bytes]] = []
    wanted = params.get("ca_sha256s")
    q = select(CaCertificate).order_by(col(CaCertificate.added_at))
    for row in session.exec(q).all():
        if wanted is not None and row.sha256 not in wanted:
            continue
        cert = x509.load_der_x509_certificate(row.der)
        cn = [a.value for a in cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)]
        ref = CaRef(
            sha256=row.sha256,
            sha1=row.sha1,
            subject=row.subject,
            common_name=str(cn[0]) if cn else None,
            pem_name=f"ca-{row.sha256[:16]}.pem",
            self_signed=row.is_self_signed,
        )
        cas.append((ref, cert.public_bytes(Encoding.PEM)))
    return RunInputs(run.id, run.kind, params, workflow, dmg_path, dmg, tuple(cas))


def _auth(
    session: Session, box: Callable[[], SecretBox], device: Device, settings: Settings, shared: list[bytes]
) -> SshAuth:
    ref = device.auth_ref
    if ref is None:
        if settings.ssh.client_keys:
            return SshAuth(key_files=tuple(settings.ssh.client_keys))
        return SshAuth(agent=True)
    kind, _, value = ref.partition(":")
    if kind == "key":
        return SshAuth(key_files=(Path(value).expanduser(),))
    if kind == "agent":
        return SshAuth(agent=True)
    if kind == "password":
        password = load_secret(session, box(), value)
        share(password, shared)
        return SshAuth(password=password)
    raise InputError(
        "BadInventory", f"{device.name}: unknown auth reference {ref!r} (key:PATH, agent, password:NAME)"
    )


def _sudo(
    session: Session, box: Callable[[], SecretBox], device: Device, auth: SshAuth, shared: list[bytes]
) -> SudoMode:
    vars_ = json.loads(device.vars_json or "{}")
    name = vars_.get("sudo_password")
    if name:
        try:
            password = load_secret(session, box(), str(name))
        except SecretNotFound:
            # this device's job fails with what to do; the run and the other devices go on
            raise InputError(
                "SudoPasswordMissing",
                f"{device.name}: vars.sudo_password names secret {str(name)!r}, which is not stored: "
                f"orchestrate secrets set {name} --kind sudo-password --prompt",
            ) from None
        share(password, shared)
        return SudoMode(password=password)
    if vars_.get("sudo") == "nopasswd" or auth.password is None:
        return NOPASSWD
    return SudoMode(password=auth.password)  # a macOS admin's sudo password is the login password


def _host_keys(session: Session, device: Device, settings: Settings) -> HostKeyPolicy:
    pins = session.exec(
        select(HostKeyPin.public_key).where(
            HostKeyPin.address == device.address, HostKeyPin.port == device.port
        )
    ).all()
    return HostKeyPolicy(
        pinned=tuple(pins),
        known_hosts=settings.ssh.known_hosts,
        trust_on_first_use=settings.ssh.trust_on_first_use,
    )


def device_work(
    session: Session,
    settings: Settings,
    inputs: RunInputs,
    job: DeviceJob,
    device: Device,
    box: Callable[[], SecretBox],
    pin: Callable[[Device, str, str], None] | None = None,
) -> DeviceWork:
    """The DeviceWork for one job. Raises InputError (recorded as the job's failure)."""
    user = device.user or settings.ssh.user
    if not user:
        raise InputError(
            "BadInventory", f"{device.name}: no SSH user (set `user` in the inventory or [ssh] user)"
        )
    target = SshTarget(host=device.address, port=device.port, username=user)
    shared: list[bytes] = []  # secrets also masked in every log line while this device's job runs
    auth = _auth(session, box, device, settings, shared)
    redactor = Redactor()
    if auth.password:
        redactor.add(auth.password)
    sudo = _sudo(session, box, device, auth, shared)
    if sudo.password:
        redactor.add(sudo.password)
    produce: Callable[[str], bytes] | None = None
    if inputs.kind in INSTALL_KINDS:
        params, produce = _install_params(session, settings, inputs, device, box, redactor, shared)
    else:
        params = _lifecycle_params(session, inputs, device)
    sources: dict[str, Path | bytes] = {f"ca:{ref.sha256}": pem for ref, pem in inputs.cas}
    if inputs.dmg_path is not None:
        sources["dmg"] = inputs.dmg_path
    return DeviceWork(
        job_id=job.id,
        device_id=device.id,
        name=device.name,
        attempt=job.attempts,
        target=target,
        auth=auth,
        host_keys=_host_keys(session, device, settings),
        sudo=sudo,
        params=params,
        materials=Materials(sources, produce, redactor, shared),
        on_new_host_key=(lambda line, fp: pin(device, line, fp)) if pin is not None else None,
    )


def _install_params(
    session: Session,
    settings: Settings,
    inputs: RunInputs,
    device: Device,
    box: Callable[[], SecretBox],
    redactor: Redactor,
    shared: list[bytes],
) -> tuple[InstallParams, Callable[[str], bytes]]:
    p = inputs.params
    cert = active_certificate(session, device.id)
    if cert is None:
        raise InputError(
            "NoCertificate", f"{device.name} has no client certificate: orchestrate certs add PFX"
        )
    if inputs.dmg is None:
        raise InputError("ArtifactMissing", "the run names no DMG")
    cn = [cert.subject_cn] if cert.subject_cn else []
    names = tuple(dict.fromkeys([*cn, *json.loads(cert.san_dns_json)]))
    params = InstallParams(
        run_id=inputs.run_id,
        version=str(p["version"]),
        switch=str(p["switch"]),
        background_url=str(p["background_url"]),
        dmg=inputs.dmg,
        identity=IdentityRef(sha1=cert.sha1, sha256=cert.sha256, names=names),
        cas=tuple(ref for ref, _ in inputs.cas),
        private_dir=inputs.private_dir,
        cache_dir=CACHE_DIR if p.get("cache_dmg") else None,
        method=str(p.get("method") or "install.sh"),
        expected_team_id=p.get("expected_team_id"),
        min_free_bytes=int(p.get("min_free_bytes") or 0),
        allow_all_apps=bool(p.get("allow_all_apps")),
        name_rule=str(p.get("name_rule") or DEFAULT_NAME_RULE),
        trust_mode=str(p.get("trust_mode") or "ssh"),
    )
    state: dict[str, bytes] = {}
    cert_id = cert.id
    engine = session.get_bind()

    def produce(name: str) -> bytes:
        """The re-wrapped PFX and its `security -i` input share one one-time password, made on first use."""
        if "pfx" not in state:
            from orchestrator.state.models import ClientCertificate

            with Session(engine) as own:  # the builder's session is closed by now
                row = own.get(ClientCertificate, cert_id)
                if row is None:
                    raise KeyError(f"{device.name}: its client certificate was removed during the run")
                contents = load_identity(own, BoxVault(box()), row, f"stored identity of {device.name}")
            if contents.key is None or contents.cert is None:
                raise KeyError(f"{device.name}: the stored PFX holds no identity (key and certificate)")
            otp = one_time_password()
            redactor.add(otp)
            share(otp, shared)
            state["pfx"] = rewrap_for_macos(contents.key, contents.cert, contents.chain, otp)
            state["stdin:identity-import"] = identity_import_stdin(params, otp.decode("ascii"))
        if name not in state:
            raise KeyError(f"no upload source {name!r}")
        return state[name]

    return params, produce



def _lifecycle_params(session: Session, inputs: RunInputs, device: Device) -> Any:
    """Params of the uninstall, reconfigure, start/stop/restart and logs workflows from the run's params."""
    p = inputs.params
    base: dict[str, Any] = {"run_id": inputs.run_id}
    if inputs.kind == "uninstall":
        cert = active_certificate(session, device.id)
        remove_identity = bool(p.get("remove_identity")) and cert is not None
        base |= {
            "private_dir": inputs.private_dir,
            "dmg": None if inputs.dmg is None else {
                "version": inputs.dmg.version, "sha256": inputs.dmg.sha256,
                "size": inputs.dmg.size, "file_name": inputs.dmg.file_name,
            },
            "remove_identity": remove_identity,
            "identity_sha1": cert.sha1.lower() if remove_identity and cert is not None else None,
            "remove_ca_sha1s": list(cas_added(session, device.id)) if p.get("remove_ca") else [],
        }
    elif inputs.kind == "reconfigure":
        base["pairs"] = [list(pair) for pair in p.get("pairs", [])]
    elif inputs.kind == "logs":
        base |= {"lines": int(p.get("lines") or 200), "daemon": bool(p.get("daemon"))}
    try:
        return params_from_json(inputs.kind, base)
    except (ValueError, TypeError, KeyError) as e:
        raise InputError("BadParameters", f"{inputs.kind} parameters for {device.name}: {e}") from None


def cas_added(session: Session, device_id: str) -> tuple[str, ...]:
    """SHA-1s of the CA certificates OUR runs trusted on this device (never one that was there before)."""
    rows = session.exec(select(AuditEvent.params_json).where(AuditEvent.action == CA_ADDED)).all()
    out: list[str] = []
    for raw in rows:
        doc = json.loads(raw)
        if doc.get("device_id") == device_id and doc.get("sha1"):
            out.append(str(doc["sha1"]).lower())
    return tuple(dict.fromkeys(out))


def ssh_access(
    session: Session, settings: Settings, device: Device, box: Callable[[], SecretBox]
) -> tuple[SshTarget, SshAuth, HostKeyPolicy]:
    """How to reach and log in to a device without a run (`inventory probe`). Raises InputError."""
    user = device.user or settings.ssh.user
    if not user:
        raise InputError(
            "BadInventory", f"{device.name}: no SSH user (set `user` in the inventory or [ssh] user)"
        )
    auth = _auth(session, box, device, settings, [])
    target = SshTarget(host=device.address, port=device.port, username=user)
    return target, auth, _host_keys(session, device, settings)
