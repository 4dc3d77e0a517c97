"""The YAML fleet spec: which virtual Macs to start and how each behaves.

Parsed strictly (unknown keys are errors that name the field) because a typo in a fault knob that is silently
ignored makes a test pass for the wrong reason.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_LOCAL_HOST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_HOST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_VERSION = re.compile(r"^\d+\.\d+(\.\d+){0,2}$")


class SpecError(ValueError):
    """A fleet spec that cannot be used; the message names the file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Faults(_Strict):
    """Per-host fault knobs. All default to off."""

    refuse_connections: bool = False
    hang_after_accept: bool = False  # accept TCP, never answer the SSH banner
    drop_after_sftp_bytes: int | None = Field(default=None, ge=0)  # reset once this many bytes were written
    latency_ms: int = Field(default=0, ge=0)  # added to every exec round trip and SFTP request
    bandwidth_bytes_per_s: int | None = Field(default=None, gt=0)  # SFTP write cap
    hang_tools: list[str] = Field(default_factory=list)  # these commands never return
    fail_tools: dict[str, int] = Field(default_factory=dict)  # command -> exit status, with an error message
    trust_refused: bool = False  # `security add-trusted-cert -d` refused as macOS 11+ refuses it over SSH
    # How the fake 1E Client words its log (no public sample of the real log exists): "standard" (macsim's
    # own lines), "reworded" (other, equally plausible wording), "no-start-line" (no start line at all),
    # "socket-only" (errors are logged, a success never is; the Switch socket shows in lsof), "silent" (no
    # line at all, and lsof shows no socket either). Every dialect but "silent" holds the socket when
    # connected.
    client_log: Literal["standard", "reworded", "no-start-line", "socket-only", "silent"] = "standard"
    # a trust change (add-trusted-cert, remove-trusted-cert, delete-certificate -t) raises a confirmation
    # dialog on the console that nobody answers: the command waits until it is killed
    trust_dialog: bool = False
    # the Switch turns away clients of these versions (a version-specific break: the new client installs and
    # starts, then cannot connect), for tests of an upgrade's rollback
    switch_rejects_versions: list[str] = Field(default_factory=list)


class InstalledClient(_Strict):
    """A 1E Client already on the Mac before the fleet starts (for upgrade tests)."""

    version: str
    switch: str = "tachyon.example.test:4000"
    background_url: str = "https://tachyon.example.test:443/Background/"
    running: bool = True

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not _VERSION.match(v):
            raise ValueError(f"not a version like 8.0.1.23: {v!r}")
        return v


class HostSpec(_Strict):
    name: str  # the fleet's handle for the host (defaults for LocalHostName)
    port: int | None = Field(default=None, ge=0, le=65535)  # None/0: any free port
    local_host_name: str | None = None
    host_name: str | None = None  # scutil HostName; unset on most Macs
    # the name the DHCP server gives (or reverse DNS finds) for the primary address: `hostname` prints it
    # when HostName is not set (configd's order; see `hostname` below)
    network_host_name: str | None = None
    computer_name: str | None = None
    serial_number: str | None = None  # ioreg's IOPlatformSerialNumber; derived from the name when unset
    hardware_uuid: str | None = None  # ioreg's IOPlatformUUID; derived from the name when unset
    arch: Literal["x86_64", "arm64"] = "x86_64"
    rosetta: bool = False  # only meaningful on arm64
    macos_version: str = "14.6.1"
    macos_build: str = "23G93"
    user: str = "admin"
    uid: int = 501
    password: str | None = None  # SSH password auth when set; also the sudo password
    authorized_keys: list[str] = Field(default_factory=list)  # OpenSSH public key lines
    sudo: Literal["nopasswd", "password", "none"] = "nopasswd"
    free_space_mb: int = Field(default=50_000, ge=0)
    installed_client: InstalledClient | None = None
    trusted_cas: list[str] = Field(default_factory=list)  # PEM files trusted as an MDM profile would
    faults: Faults = Field(default_factory=Faults)

    @field_validator("name", "local_host_name")
    @classmethod
    def _local_name(cls, v: str | None) -> str | None:
        if v is not None and not _LOCAL_HOST_NAME.match(v):
            raise ValueError(f"not a valid LocalHostName (letters, digits, hyphens; ≤ 63): {v!r}")
        return v

    @field_validator("host_name", "network_host_name")
    @classmethod
    def _host_name(cls, v: str | None) -> str | None:
        if v is not None and not _HOST_NAME.match(v):
            raise ValueError(f"not a valid host name: {v!r}")
        return v

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        if not _USER.match(v) or v == "root":
            raise ValueError(f"not a valid non-root short user name: {v!r}")
        return v

    @field_validator("macos_version")
    @classmethod
    def _macos(cls, v: str) -> str:
        if not _VERSION.match(v):
            raise ValueError(f"not a macOS version like 14.6.1: {v!r}")
        return v

    @model_validator(mode="after")
    def _sudo_needs_password(self) -> HostSpec:
        if self.sudo == "password" and not self.password:
            raise ValueError("sudo: password needs a password for the user")
        return self

    @property
    def effective_local_host_name(self) -> str:
        return self.local_host_name or self.name

    @property
    def effective_serial_number(self) -> str:
        """A Mac serial's shape (12 upper-case letters and digits), stable per host name."""
        digest = hashlib.sha256(f"serial:{self.name}".encode()).hexdigest().upper()
        return self.serial_number or f"C02{digest[:9]}"

    @property
    def effective_hardware_uuid(self) -> str:
        return self.hardware_uuid or str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{self.name}.macsim")).upper()

    @property
    def hostname(self) -> str:
        """What `hostname` prints, in configd's order: HostName when set, else the name DHCP or reverse DNS
        gives the primary address, else LocalHostName + `.local` (Apple's Mac OS X Server worksheet, quoted
        at excitedcuriosity.wordpress.com 2007-08-24; a Mac with HostName not set printing a DHCP name:
        github.com/tofrankie/blog issue 29)."""
        return self.host_name or self.network_host_name or f"{self.effective_local_host_name}.local"


class FleetSpec(_Strict):
    state_dir: str | None = None  # where host roots, keys and logs live; a temp dir when unset
    client_key: str | None = None  # private key path used to log in; generated into state_dir when unset
    defaults: dict[str, object] = Field(default_factory=dict)  # HostSpec fields applied to every host
    hosts: list[HostSpec]

    @model_validator(mode="after")
    def _unique(self) -> FleetSpec:
        seen: dict[str, int] = {}
        ports: dict[int, str] = {}
        for i, h in enumerate(self.hosts):
            if h.name in seen:
                first = seen[h.name]
                raise ValueError(f"hosts[{i}].name: duplicate host name {h.name!r} (first at hosts[{first}])")
            seen[h.name] = i
            if h.port:
                if h.port in ports:
                    raise ValueError(f"hosts[{i}].port: port {h.port} already used by {ports[h.port]!r}")
                ports[h.port] = h.name
        return self


def _format_error(source: str, err: ValidationError) -> str:
    lines = [f"{source}: invalid fleet spec"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_spec(data: object, source: str = "<spec>") -> FleetSpec:
    """Validate a spec mapping. Host `defaults` are merged under each host. Raises SpecError."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a fleet spec is a mapping with a 'hosts' list")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise SpecError(f"{source}: defaults: must be a mapping")
    hosts = data.get("hosts")
    if isinstance(hosts, list):
        merged = []
        for h in hosts:
            merged.append({**defaults, **h} if isinstance(h, dict) else h)
        data = {**data, "hosts": merged}
    try:
        return FleetSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError(_format_error(source, e)) from None


def load_spec(path: str | Path) -> FleetSpec:
    """Read and validate a YAML fleet spec. Relative paths inside resolve against the file's folder."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as e:
        raise SpecError(f"{p}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise SpecError(f"{p}: not valid YAML: {e}") from None
    spec = parse_spec(data, str(p))
    base = p.resolve().parent
    for h in spec.hosts:
        h.trusted_cas = [str(base / c) for c in h.trusted_cas]
    if spec.state_dir and not Path(spec.state_dir).is_absolute():
        spec.state_dir = str(base / spec.state_dir)
    if spec.client_key and not Path(spec.client_key).is_absolute():
        spec.client_key = str(base / spec.client_key)
    return spec
