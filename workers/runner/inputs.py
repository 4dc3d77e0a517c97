"""From database rows to `DeviceWork`: SSH target, credentials, host-key policy, sudo mode, workflow
parameters and the materials a plan names (DMG, the device's PFX re-wrapped with a one-time password,
CA certificates, the `security -i` input).

Secrets are decrypted here, at the edge, only when a plan needs them, and registered with the device's
redactor so that no record, event or message can carry them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import bindparam
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from orchestrator.certs.pfx import one_time_password, rewrap_for_macos
from orchestrator.certs.store import BoxVault, active_certificate, load_identity
from orchestrator.config import Settings
from orchestrator.redact import LOG_REDACTOR, Redactor
from orchestrator.secrets import SecretBox, SecretError, SecretNotFound, load_secret
from orchestrator.state.models import (
    Artifact,
    AuditEvent,
    CaCertificate,
    ClientCertificate,
    Device,
    DeviceJob,
    HostKeyPin,
    Run,
)
from tasks.model import JobInputs, Params, ParamsError, Read, Workflow
from tasks.refs import CaRef, DmgRef, IdentityRef
from tasks.registry import workflow_for as workflow_for  # the run kind's workflow (celery_dispatch asks here)
from workers.runner.device import DeviceWork, Materials
from workers.ssh import NOPASSWD, HostKeyPolicy, SshAuth, SshTarget, SudoMode

CA_ADDED = "ca.added"  # audit action: our run trusted this CA on this device (uninstall --remove-ca may undo)


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
    # device id -> SHA-1s of the CAs our runs trusted on it: read once per run (one query for the fleet),
    # only for a workflow that reads them (uninstall)
    cas_added: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def private_dir(self) -> str:
        return f"/private/tmp/macfleet-{self.run_id[:12]}"


def share(secret: bytes, shared: list[bytes]) -> None:
    """Mask secret in every log line of this process until the job ends (`Materials.release`)."""
    LOG_REDACTOR.add(secret)
    shared.append(secret)


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
    added = cas_added_by_device(session) if Read.CAS_ADDED in workflow.reads else {}
    return RunInputs(run.id, run.kind, params, workflow, dmg_path, dmg, tuple(cas), added)


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
    pins = session.exec(_pins_query(), params={"b_address": device.address, "b_port": device.port}).all()
    return HostKeyPolicy(
        pinned=tuple(pins),
        known_hosts=settings.ssh.known_hosts,
        trust_on_first_use=settings.ssh.trust_on_first_use,
    )


@cache
def _pins_query() -> SelectOfScalar[str]:
    """Built once: building a statement costs more CPU than running it (one per device job)."""
    return select(HostKeyPin.public_key).where(
        HostKeyPin.address == bindparam("b_address"), HostKeyPin.port == bindparam("b_port")
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
    try:
        return _device_work(session, settings, inputs, job, device, box, pin)
    except SecretError as e:  # no key, another key, a damaged or missing secret: this job fails, saying which
        raise InputError(type(e).__name__, f"{device.name}: {e}") from None


def _device_work(
    session: Session,
    settings: Settings,
    inputs: RunInputs,
    job: DeviceJob,
    device: Device,
    box: Callable[[], SecretBox],
    pin: Callable[[Device, str, str], None] | None,
) -> DeviceWork:
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
    wf = inputs.workflow
    cert = active_certificate(session, device.id) if Read.IDENTITY in wf.reads else None
    job_inputs = JobInputs(
        run_id=inputs.run_id,
        device_name=device.name,
        run_params=inputs.params,
        private_dir=inputs.private_dir,
        dmg=inputs.dmg,
        cas=tuple(ref for ref, _ in inputs.cas),
        identity=_identity(cert),
        cas_added=inputs.cas_added.get(device.id, ()),
    )
    try:
        params = wf.build_params(job_inputs)
    except ParamsError as e:
        raise InputError(e.error_type, str(e)) from None
    produce: Callable[[str], bytes] | None = None
    if cert is not None and wf.stdin_inputs:
        produce = _secret_inputs(session, wf, params, cert, device.name, box, redactor, shared)
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


def _identity(cert: ClientCertificate | None) -> IdentityRef | None:
    """The device's client certificate by its hashes and names (CN first, then the SAN DNS names)."""
    if cert is None:
        return None
    cn = [cert.subject_cn] if cert.subject_cn else []
    names = tuple(dict.fromkeys([*cn, *json.loads(cert.san_dns_json)]))
    return IdentityRef(sha1=cert.sha1, sha256=cert.sha256, names=names)


def _secret_inputs(
    session: Session,
    wf: Workflow,
    params: Params,
    cert: ClientCertificate,
    device_name: str,
    box: Callable[[], SecretBox],
    redactor: Redactor,
    shared: list[bytes],
) -> Callable[[str], bytes]:
    """The device's PFX re-wrapped with a one-time password ("pfx"), and the workflow's stdin inputs made
    with the same password ("stdin:NAME"): the identity is read in the builder's session (no session of
    its own later), re-wrapped on first use (the KDF is the costly part), masked in every record and log."""
    contents = load_identity(session, BoxVault(box()), cert, f"stored identity of {device_name}")
    if contents.key is None or contents.cert is None:
        raise InputError("BadInput", f"{device_name}: the stored PFX holds no identity (key and certificate)")
    key, leaf, chain = contents.key, contents.cert, contents.chain
    state: dict[str, bytes] = {}

    def produce(name: str) -> bytes:
        if "pfx" not in state:
            otp = one_time_password()
            redactor.add(otp)
            share(otp, shared)
            state["pfx"] = rewrap_for_macos(key, leaf, chain, otp)
            for input_name, make in wf.stdin_inputs.items():
                state[f"stdin:{input_name}"] = make(params, otp.decode("ascii"))
        if name not in state:
            raise KeyError(f"no upload source {name!r}")
        return state[name]

    return produce


def cas_added_by_device(session: Session) -> dict[str, tuple[str, ...]]:
    """SHA-1s of the CA certificates OUR runs trusted (never one that was there before), by device, first
    trusted first: one read of the audit trail for the whole run, not one per device."""
    rows = session.exec(select(AuditEvent.params_json).where(AuditEvent.action == CA_ADDED)).all()
    out: dict[str, dict[str, None]] = {}
    for raw in rows:
        doc = json.loads(raw)
        if doc.get("device_id") and doc.get("sha1"):
            out.setdefault(str(doc["device_id"]), {})[str(doc["sha1"]).lower()] = None
    return {device: tuple(sha1s) for device, sha1s in out.items()}


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
