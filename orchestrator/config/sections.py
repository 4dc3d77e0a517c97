"""The sections of the settings (`[deploy]`, `[trust]`, `[ssh]`, `[waves]`, `[celery]`, `[certs]`,
`[verify]`): their fields, defaults and checks."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from inventory.userfiles import KNOWN_HOSTS, SSH_KEY, FileKind, UserFileError, check_user_file
from orchestrator.waves import WaveSpecError, parse_threshold, parse_waves
from tasks.evidence import DEFAULT_CONNECTED_PATTERNS, DEFAULT_ERROR_PATTERNS, VerifyRules, validate_patterns


class Executor(StrEnum):
    LOCAL = "local"  # asyncio in this process (the embedded default)
    CELERY = "celery"  # Celery workers through the broker


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeploySettings(_Section):
    """Defaults for install/upgrade/reconfigure; a flag or group var overrides them per run."""

    switch: str | None = None
    """Tachyon Switch as HOST:PORT, several separated by `;` (or `,` on the command line)."""
    background_url: str | None = None
    """Background Channel URL(s), e.g. `https://tachyon.acme.local/Background/`."""
    version: str | None = None
    """1E Client version to install; None means the newest artifact in the store."""
    install_method: str = "install.sh"
    """`install.sh` (the documented script, keeps the conf on upgrade) or `pkg` (pkg + updateconf.sh)."""
    expected_team_id: str | None = None
    """When set, `pkgutil --check-signature` must show this Apple team id before installing."""
    keep_dmg_cache: bool = False
    """Keep the uploaded DMG in a cache directory on the Mac so the next run skips the upload."""
    allow_all_apps: bool = False
    """Import the identity with `-A` (any app may use the key) instead of `-T`: less secure, opt-in."""
    verify_timeout: float = Field(default=120.0, gt=0)
    """Seconds the verify poll looks for the Switch connection after a (re)start (a log line or a socket,
    see `[verify]`); neither, with the client running: the device ends `unverified`."""
    lease_ttl: float = Field(default=60.0, ge=2)
    """Seconds a controller's or worker's claim on a device job lasts without renewal: after a crash,
    `runs resume` (or a redelivered task) takes the job over once it expired."""


class TrustSettings(_Section):
    """How root CAs get trusted on the Macs (macOS 11+ refuses a trust change over SSH without a user)."""

    mode: Literal["ssh", "profile", "skip"] = "ssh"
    """ssh: try `security add-trusted-cert` (bounded, never waiting on a dialog); refused, the device is
    installed and left awaiting trust. profile: never try over SSH; the device awaits the MDM profile from
    `orchestrate certs profile` unless its trust is already there. skip: neither set nor check CA trust."""


class SshSettings(_Section):
    """The SSH transport: timeouts (seconds), limits and host-key policy."""

    connect_timeout: float = Field(default=15.0, gt=0)
    """TCP connect plus SSH handshake and login."""
    command_timeout: float = Field(default=300.0, gt=0)
    """One remote command."""
    step_timeout: float = Field(default=1800.0, gt=0)
    """One workflow step (which may run several commands, e.g. an upload)."""
    keepalive_interval: float = Field(default=15.0, gt=0)
    """Seconds between keepalives, so a silent peer fails in bounded time."""
    keepalive_count_max: int = Field(default=3, ge=1)
    concurrency: int = Field(default=20, ge=1, le=10_000)
    """Devices worked on at once (one connection each)."""
    known_hosts: Path | None = None
    """An OpenSSH known_hosts file trusted in addition to the keys pinned in the database."""
    trust_on_first_use: bool = False
    """Pin an unknown host key on first contact instead of refusing the device. Off by default."""
    user: str | None = None
    """Login user when the inventory gives none."""
    client_keys: list[Path] = Field(default_factory=list)
    """Private key files to offer (in addition to the agent)."""
    upload_block_size: int = Field(default=1024 * 1024, ge=16 * 1024)
    """Largest SFTP write request, bytes (the Mac's own limit applies when smaller: 255 KiB on OpenSSH)."""
    upload_window: int = Field(default=4 * 1024 * 1024, ge=16 * 1024)
    """Bytes one upload may have sent but not yet acknowledged by the Mac (at least one block)."""
    upload_budget: int = Field(default=32 * 1024 * 1024, ge=16 * 1024)
    """Bytes all uploads of one controller or worker process may have in flight together (at least one
    window): bounds the controller's memory for any DMG size and concurrency."""

    @model_validator(mode="after")
    def _upload_limits_nest(self) -> SshSettings:
        if not self.upload_block_size <= self.upload_window <= self.upload_budget:
            raise ValueError("ssh: upload_block_size <= upload_window <= upload_budget must hold "
                             f"(got {self.upload_block_size}, {self.upload_window}, {self.upload_budget})")
        return self

    # asyncssh opens these files itself: a FIFO or a /dev/zero symlink there would hang `deploy` mid-run.
    @field_validator("known_hosts")
    @classmethod
    def _check_known_hosts(cls, v: Path | None) -> Path | None:
        if v is not None:
            _check_file(v.expanduser(), KNOWN_HOSTS)
        return v

    @field_validator("client_keys")
    @classmethod
    def _check_client_keys(cls, v: list[Path]) -> list[Path]:
        for key in v:
            _check_file(key.expanduser(), SSH_KEY)
        return v


class WaveSettings(_Section):
    """Defaults for staged rollouts (upgrade waves)."""

    waves: str = "1,5%,25%,100%"
    """Wave sizes: counts or percentages of the remaining devices, the last one usually 100%."""
    max_failures: str = "2%"
    """Halt the run when failures pass this: a count (`3`) or a percentage of the devices (`2%`)."""
    pause: float = Field(default=0.0, ge=0)
    """Seconds to wait between waves (0: go on as soon as a wave is healthy)."""

    # Checked when the settings load, so a bad value is blamed on where it was set, before any command runs.
    @field_validator("waves")
    @classmethod
    def _check_waves(cls, v: str) -> str:
        try:
            parse_waves(v, 100, name="waves")
        except WaveSpecError as e:
            raise ValueError(str(e)) from None
        return v

    @field_validator("max_failures")
    @classmethod
    def _check_max_failures(cls, v: str) -> str:
        try:
            parse_threshold(v, name="max_failures")
        except WaveSpecError as e:
            raise ValueError(str(e)) from None
        return v


class CelerySettings(_Section):
    """The Celery driver (`workers.celery_app`). Put passwords in the environment, not in the file:
    `ORCHESTRATE_CELERY__PASSWORD` is put into broker and backend URLs that carry none."""

    broker_url: str = "redis://127.0.0.1:6379/0"
    result_backend: str | None = None
    """None: results are not stored in Celery (the database is the truth; Flower still sees task events)."""
    password: str | None = Field(default=None, repr=False)
    """The Redis password (env `ORCHESTRATE_CELERY__PASSWORD`), for URLs that name none."""
    task_time_limit: float = Field(default=3600.0, gt=0)
    """Hard limit of one device job (seconds): the job is cancelled and recorded as failed."""
    task_soft_time_limit: float | None = Field(default=None, gt=0)
    """Soft limit: the job stops after the step it is in (always-steps still run); default 90% of the hard."""
    visibility_timeout: float | None = Field(default=None, gt=0)
    """Seconds before Redis hands an unacknowledged task (its worker died) to another worker; must exceed
    the longest job. Default: task_time_limit + 10%."""
    restore_interval: float = Field(default=10.0, gt=0)
    """Seconds between a worker's sweeps for tasks whose visibility timeout passed."""
    worker_concurrency: int = Field(default=200, ge=1, le=10_000)
    """Device jobs one worker process holds at once (threads that wait on one asyncio loop)."""
    publish_retries: int = Field(default=10, ge=0)
    """Publishing retries while the broker is unreachable (about 2 s apart) before the run halts."""

    @property
    def effective_soft_limit(self) -> float:
        return self.task_soft_time_limit or self.task_time_limit * 0.9

    @property
    def effective_visibility_timeout(self) -> float:
        return self.visibility_timeout or self.task_time_limit * 1.1


class CertSettings(_Section):
    """Client certificates (see tasks/hostnames.py for a Mac's names)."""

    name_rule: Literal["sharing", "hostname", "either"] = "either"
    """Which of the Mac's names the certificate's CN or a SAN DNS name must equal (exactly, case-sensitive):
    `sharing` LocalHostName + ".local" (the Sharing pane's name); `hostname` what `hostname` prints;
    `either` the Sharing-pane name, or `hostname` where the Mac's HostName is set."""


class VerifySettings(_Section):
    """How the verify step recognises the client's Switch connection in its log (tasks.evidence). Regexes,
    case-insensitive, POSIX extended syntax (they also run in `grep -E` on the Mac). The other signal, an
    established TCP connection of the client to the Switch's port, needs no setting."""

    connected_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_CONNECTED_PATTERNS))
    """A log line matching one of these (after the run's (re)start) means connected."""
    error_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_ERROR_PATTERNS))
    """A log line matching one of these means failed (it wins over a connected pattern on the same line;
    the latest matching line decides)."""
    interval: float = Field(default=1.0, gt=0, le=60)
    """Seconds between the probes of the poll on the Mac."""

    @field_validator("connected_patterns", "error_patterns")
    @classmethod
    def _patterns(cls, v: list[str], info: Any) -> list[str]:
        return list(validate_patterns(info.field_name, v))

    def rules(self) -> VerifyRules:
        return VerifyRules(tuple(self.connected_patterns), tuple(self.error_patterns))


def _check_file(path: Path, kind: FileKind) -> None:
    try:
        check_user_file(path, kind)
    except UserFileError as e:
        raise ValueError(str(e)) from None
