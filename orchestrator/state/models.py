"""The shared record: every device, run, device job and step outcome (the database is the truth).

Secrets never appear here in clear: `Secret.ciphertext` is Fernet-encrypted and everything else refers to a
secret by id.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime, Index, LargeBinary, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# Named constraints, so later migrations can drop or alter them by name (SQLite batch mode needs names).
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A point in time that reads back timezone-aware in UTC on every database.

    PostgreSQL stores it as `timestamptz`; SQLite keeps no zone, so the value is stored as naive UTC and
    UTC is attached on the way out. A naive datetime given to it is taken as UTC. Without this, SQLite hands
    back naive datetimes that cannot be compared with `utcnow()` (lease expiry, for one).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    HALTED = "halted"  # stopped by a failure threshold or by hand; resumable
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # finished, some devices failed
    CANCELLED = "cancelled"

    @classmethod
    def ended(cls) -> tuple[str, ...]:
        """A run that is over: nothing resumes it (retry its failed devices, or start a new run)."""
        return (cls.SUCCEEDED.value, cls.FAILED.value, cls.CANCELLED.value)


class JobStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"  # published to the Celery broker, not yet claimed by a worker
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # nothing to do (already at target) or left untouched by a halt
    ROLLED_BACK = "rolled_back"
    INTERRUPTED = "interrupted"  # the controller stopped while it ran; resume continues it
    # installed and running, but neither the client log nor a socket to the Switch confirmed the connection
    # within the verify window; not a failure: `converge` and `status --refresh` check it again
    UNVERIFIED = "unverified"
    # installed and configured, but the CA trust could not be set over SSH (macOS 11+ refuses it): deliver
    # the `certs profile` by MDM, then `converge` finishes the device
    AWAITING_TRUST = "awaiting_trust"

    @classmethod
    def unfinished(cls) -> tuple[str, ...]:
        """A job someone still has to work on (claimable, resumable)."""
        return (cls.PENDING.value, cls.QUEUED.value, cls.INTERRUPTED.value, cls.RUNNING.value)

    @classmethod
    def openable(cls) -> tuple[str, ...]:
        """A job a dispatcher may publish (not yet handed to a worker)."""
        return (cls.PENDING.value, cls.INTERRUPTED.value)

    @classmethod
    def in_flight(cls) -> tuple[str, ...]:
        return (cls.QUEUED.value, cls.RUNNING.value)

    @classmethod
    def done(cls) -> tuple[str, ...]:
        """A job whose device work has ended, whatever the outcome."""
        return (
            cls.SUCCEEDED.value,
            cls.FAILED.value,
            cls.SKIPPED.value,
            cls.ROLLED_BACK.value,
            cls.UNVERIFIED.value,
            cls.AWAITING_TRUST.value,
        )

    @classmethod
    def recheck(cls) -> tuple[str, ...]:
        """Ended without a confirmed outcome: `converge` looks again."""
        return (cls.UNVERIFIED.value, cls.AWAITING_TRUST.value)


class StepStatus(StrEnum):
    RUNNING = "running"
    CHANGED = "changed"  # ran mutating commands successfully
    OK = "ok"  # ran read-only commands successfully
    NOOP = "noop"  # nothing to do; noop_reason says why
    FAILED = "failed"
    SKIPPED = "skipped"
    UNVERIFIED = "unverified"  # verify ended its window with the client running and no evidence either way


class Device(SQLModel, table=True):
    """A Mac. `id` is stable across renames and re-imports; `name` is the inventory handle."""

    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = Field(index=True, unique=True)
    address: str
    port: int = 22
    user: str | None = None
    auth_ref: str | None = None  # "key:PATH", "agent", "password:SECRET_NAME"
    expected_hostname: str | None = None  # inventory field; defaults to name
    reported_hostname: str | None = None  # what the Mac's `hostname` printed at the last fact gathering
    vars_json: str = "{}"
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    # facts and outcome, refreshed by runs
    arch: str | None = None
    macos_version: str | None = None
    installed_version: str | None = Field(default=None, index=True)
    connected: bool | None = None
    facts_json: str | None = None
    facts_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_run_id: str | None = None
    last_outcome: str | None = None
    last_error: str | None = None

    @property
    def target_hostname(self) -> str:
        """The host name a client certificate must carry: what the Mac reports, else the expected one."""
        return self.reported_hostname or self.expected_hostname or self.name


class Group(SQLModel, table=True):
    __tablename__ = "device_group"
    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = Field(index=True, unique=True)
    vars_json: str = "{}"


class GroupMember(SQLModel, table=True):
    group_id: str = Field(foreign_key="device_group.id", primary_key=True)
    device_id: str = Field(foreign_key="device.id", primary_key=True, index=True)


class GroupChild(SQLModel, table=True):
    parent_id: str = Field(foreign_key="device_group.id", primary_key=True)
    child_id: str = Field(foreign_key="device_group.id", primary_key=True)


class Secret(SQLModel, table=True):
    """An encrypted value (PFX bytes, a PFX password, an SSH or sudo password)."""

    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = Field(index=True, unique=True)
    kind: str  # pfx | pfx-password | identity | ssh-password | sudo-password
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_id: str  # fingerprint of the Fernet key that encrypted it (not the key)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    rotated_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class Artifact(SQLModel, table=True):
    """A 1E Client DMG in the content-addressed store."""

    id: str = Field(default_factory=new_id, primary_key=True)
    sha256: str = Field(index=True, unique=True)
    version: str = Field(index=True)
    filename: str
    size: int
    path: str
    added_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class CaCertificate(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    sha256: str = Field(index=True, unique=True)
    sha1: str
    subject: str
    issuer: str
    not_before: datetime = Field(sa_type=UtcDateTime)
    not_after: datetime = Field(sa_type=UtcDateTime)
    is_self_signed: bool = False
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    added_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class ClientCertificate(SQLModel, table=True):
    """A device's PFX (stored as a secret), with what was read from it at import."""

    id: str = Field(default_factory=new_id, primary_key=True)
    device_id: str = Field(foreign_key="device.id", index=True)
    sha1: str
    sha256: str = Field(index=True)
    subject: str
    subject_cn: str | None = None
    san_dns_json: str = "[]"
    issuer: str
    not_before: datetime = Field(sa_type=UtcDateTime)
    not_after: datetime = Field(sa_type=UtcDateTime)
    pfx_secret_id: str = Field(foreign_key="secret.id")
    password_secret_id: str = Field(foreign_key="secret.id")
    added_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    active: bool = True


class Run(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    kind: str  # install | upgrade | uninstall | reconfigure | start | stop | restart | converge
    status: str = Field(default=RunStatus.PENDING, index=True)
    params_json: str = "{}"  # never a secret; secrets are referenced by id
    waves_json: str = "[]"
    executor: str = "local"
    created_by: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime, index=True)
    started_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    halt_reason: str | None = None


class DeviceJob(SQLModel, table=True):
    """One device's part of a run. The lease makes a redelivered task or a resumed run safe."""

    # (run_id, wave, status): the wave counts every finished Celery job reads come from the index alone
    __table_args__ = (
        UniqueConstraint("run_id", "device_id"),
        Index("ix_devicejob_run_id_wave_status", "run_id", "wave", "status"),
    )
    id: str = Field(default_factory=new_id, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    device_id: str = Field(foreign_key="device.id", index=True)
    wave: int = 0
    status: str = Field(default=JobStatus.PENDING, index=True)
    current_step: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    attempts: int = 0
    error_type: str | None = None
    error_message: str | None = None
    started_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class StepRun(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    job_id: str = Field(foreign_key="devicejob.id", index=True)
    step: str
    attempt: int = 1
    status: str = StepStatus.RUNNING
    noop_reason: str | None = None
    exit_code: int | None = None
    error_type: str | None = None
    started_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    duration_ms: int | None = None
    output_tail: str | None = None  # redacted
    commands_json: str = "[]"  # argv lists as run (secrets masked)


class HostKeyPin(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("address", "port", "key_type"),)
    id: str = Field(default_factory=new_id, primary_key=True)
    device_id: str | None = Field(default=None, foreign_key="device.id", index=True)
    address: str
    port: int
    key_type: str
    public_key: str  # OpenSSH one-line form
    fingerprint_sha256: str
    source: str = "tofu"  # tofu | known_hosts | manual
    pinned_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class DeviceLock(SQLModel, table=True):
    """At most one active run per device; expires with its lease."""

    device_id: str = Field(foreign_key="device.id", primary_key=True)
    run_id: str = Field(foreign_key="run.id")
    owner: str
    expires_at: datetime = Field(sa_type=UtcDateTime)


class AuditEvent(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime, index=True)
    actor: str
    action: str
    params_json: str = "{}"  # redacted: never a secret
    outcome: str = "ok"
