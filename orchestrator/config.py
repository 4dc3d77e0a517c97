"""Settings, from (highest first): flags > environment (`ORCHESTRATE_*`) > `orchestrate.toml` > defaults.

- File: `orchestrate.toml` in the working directory, or the path in `ORCHESTRATE_CONFIG` (which must exist).
  Sections match the nested settings: `[deploy]`, `[ssh]`, `[waves]`, `[celery]`. Unknown keys are errors,
  so a typo does not silently fall back to a default.
- Environment: `ORCHESTRATE_<FIELD>`, nested with a double underscore: `ORCHESTRATE_SSH__CONCURRENCY=50`.
- Flags: CLI commands pass their options as overrides to `load_settings` (nested as dicts:
  `{"ssh": {"concurrency": 50}}`); only the keys given override, the rest of a section is kept.

Data directory: `~/.local/share/macfleet` (or `$XDG_DATA_HOME/macfleet`) holds the SQLite database
(`macfleet.db`), the secret key (`secret.key`) and the artifact store (`artifacts/`).
"""

from __future__ import annotations

import getpass
import logging
import os
import sys
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from inventory.userfiles import (
    CONFIG,
    KNOWN_HOSTS,
    SSH_KEY,
    FileKind,
    UserFileError,
    check_user_file,
    read_user_file,
)
from orchestrator.waves import WaveSpecError, parse_threshold, parse_waves
from tasks.evidence import DEFAULT_CONNECTED_PATTERNS, DEFAULT_ERROR_PATTERNS, VerifyRules, validate_patterns

if TYPE_CHECKING:
    from orchestrator.redact import Redactor

CONFIG_ENV = "ORCHESTRATE_CONFIG"
DEFAULT_CONFIG_FILE = "orchestrate.toml"


class ConfigError(ValueError):
    """The configuration file or environment holds a value that cannot be used; the message names it."""


def default_data_dir() -> Path:
    """~/.local/share/macfleet (XDG_DATA_HOME respected): the SQLite file, artifact store, secret key."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "macfleet"


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no USER/LOGNAME (some containers)
        return "operator"


def config_file_path() -> Path:
    """The configuration file read: `$ORCHESTRATE_CONFIG`, else `./orchestrate.toml` (may not exist)."""
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE)


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


class Settings(BaseSettings):
    """Everything the controller reads from its configuration (see the module docstring for sources)."""

    model_config = SettingsConfigDict(
        env_prefix="ORCHESTRATE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    """Home of the SQLite database, the secret key file and the artifact store."""
    database_url: str | None = None
    """`postgresql://user:pass@host/db` selects PostgreSQL (psycopg 3); default `sqlite:///<data_dir>/macfleet.db`."""
    secret_key_file: Path | None = None
    """Fernet key file; default `<data_dir>/secret.key`."""
    secret_key: str | None = Field(default=None, repr=False)
    """A Fernet key given directly (env `ORCHESTRATE_SECRET_KEY`); wins over the key file."""
    artifact_dir: Path | None = None
    """Content-addressed DMG store; default `<data_dir>/artifacts`."""
    actor: str = Field(default_factory=_default_actor)
    """Who the audit log names as the operator."""
    executor: Executor = Executor.LOCAL
    log_level: str = "WARNING"
    """Level of the controller's log (DEBUG, INFO, WARNING, ERROR)."""
    log_file: Path | None = None
    """Write the log to this file as well as stderr."""
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    trust: TrustSettings = Field(default_factory=TrustSettings)
    ssh: SshSettings = Field(default_factory=SshSettings)
    waves: WaveSettings = Field(default_factory=WaveSettings)
    celery: CelerySettings = Field(default_factory=CelerySettings)
    certs: CertSettings = Field(default_factory=CertSettings)


    verify: VerifySettings = Field(default_factory=VerifySettings)

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, v: str) -> str:
        if v.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"unknown log level {v[:40]!r}: use DEBUG, INFO, WARNING or ERROR")
        return v

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, v: str | None) -> str | None:
        if v is not None:
            problem = database_url_problem(v)
            if problem:
                raise ValueError(problem)
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = _BoundedToml(settings_cls, toml_file=config_file_path())
        return (init_settings, env_settings, toml)

    @property
    def effective_database_url(self) -> str:
        """The database to use: `database_url`, else the SQLite file in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'macfleet.db'}"

    @property
    def effective_secret_key_file(self) -> Path:
        return self.secret_key_file or self.data_dir / "secret.key"

    @property
    def effective_artifact_dir(self) -> Path:
        return self.artifact_dir or self.data_dir / "artifacts"


def _check_file(path: Path, kind: FileKind) -> None:
    try:
        check_user_file(path, kind)
    except UserFileError as e:
        raise ValueError(str(e)) from None


def database_url_problem(url: str) -> str | None:
    """Why url is not a database we can use, or None. Accepted: `sqlite:///PATH` and PostgreSQL
    (`postgresql://USER:PASSWORD@HOST[:PORT]/DB`, also `postgres://` and `postgresql+psycopg://`). The
    message never repeats the URL (it may hold a password)."""
    accepted = "use sqlite:///PATH or postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE"
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        return f"not a database URL; {accepted}"
    if scheme.lower() not in _DB_SCHEMES:
        return f"unsupported database scheme {scheme[:40]!r}; {accepted}"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except (ArgumentError, ValueError):  # e.g. a port that is not a number
        return f"a malformed {scheme.lower()} URL; {accepted}"
    if u.get_backend_name() == "sqlite":
        if u.host:
            return f"sqlite:// takes a path after three slashes (sqlite:///PATH), not a host; {accepted}"
        if not u.database or u.database == ":memory:":
            # an in-memory database would lose every run, device and secret when the command ends
            return f"the SQLite URL names no file; {accepted}"
    elif not u.database:
        return f"the PostgreSQL URL names no database; {accepted}"
    return None


_DB_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg")


def read_config_file(path: Path) -> dict[str, Any]:
    """The TOML table in path, read by the bounded reader (a regular file of at most 1 MiB).
    Raises ConfigError naming the file and what is wrong with it."""
    import tomllib

    try:
        data = read_user_file(path, CONFIG)
    except UserFileError as e:
        via = f" ({CONFIG_ENV} names it)" if os.environ.get(CONFIG_ENV) else ""
        raise ConfigError(f"cannot read configuration file {path}: {e.reason}{via}") from None
    try:
        return tomllib.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read configuration file {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"cannot read configuration file {path}: not valid TOML: {e}") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise ConfigError(f"cannot read configuration file {path}: nested too deeply") from None


class _BoundedToml(TomlConfigSettingsSource):
    """The TOML source, reading its file through the bounded reader (no FIFO hang, no unbounded read)."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        return read_config_file(Path(file_path))


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read the settings, with overrides (from CLI flags; None values are ignored) on top.

    Raises ConfigError naming, for each invalid value, the setting, where it came from (flag, environment
    variable or file) and what is accepted; also when the file is unreadable, not a regular file or not
    TOML, and when `$ORCHESTRATE_CONFIG` names a file that does not exist."""
    path = config_file_path()
    if os.environ.get(CONFIG_ENV) and not os.path.lexists(path):
        raise ConfigError(f"{CONFIG_ENV} names {path}, which does not exist")
    file_data: dict[str, Any] = {}
    if os.environ.get(CONFIG_ENV) or os.path.lexists(path):
        file_data = read_config_file(path)
    given = _drop_none(dict(overrides or {}))
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: "
            f"{err['msg'].removeprefix('Value error, ')} "
            f"(set by {_source_of(err['loc'], given, file_data, path)})"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise ConfigError(f"cannot read configuration file {path}: {exc}") from None


def _source_of(
    loc: tuple[int | str, ...], flags: Mapping[str, Any], file: Mapping[str, Any], path: Path
) -> str:
    """Where the value at loc came from, in the order settings are taken: flag, environment, file."""
    keys = [str(p) for p in loc]
    if _holds(flags, keys):
        return "a command-line flag"
    env = "ORCHESTRATE_" + "__".join(keys).upper()
    if any(name.upper() == env for name in os.environ):
        return f"environment variable {env}"
    if _holds(file, keys):
        section = f"[{keys[0]}] " if len(keys) > 1 else ""
        return f"{section}{keys[-1]} in file {path}"
    return "the default"


def _holds(d: Mapping[str, Any], keys: list[str]) -> bool:
    node: Any = d
    for k in keys:
        if not isinstance(node, Mapping) or k not in node:
            return False
        node = node[k]
    return True


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            inner = _drop_none(dict(v))
            if inner:
                out[k] = inner
        elif v is not None:
            out[k] = v
    return out


# --- logging ---------------------------------------------------------------------------------------------

_HANDLER_TAG = "_macfleet_handler"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time of the record (test runners swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(
    settings: Settings,
    *,
    verbose: bool = False,
    log_file: Path | None = None,
    redactor: Redactor | None = None,
) -> None:
    """Send the controller's log to stderr (and to log_file or `settings.log_file`), at DEBUG when verbose
    else `settings.log_level`. Every handler masks the values registered in redactor (default: the
    process-wide `orchestrator.redact.LOG_REDACTOR`). Calling it again replaces the handlers it added.

    Raises ConfigError for an unknown level name."""
    from orchestrator.redact import LOG_REDACTOR

    level_name = "DEBUG" if verbose else settings.log_level.upper()
    level = logging.getLevelNamesMapping().get(level_name)
    if level is None:
        raise ConfigError(f"unknown log_level {settings.log_level!r}: use DEBUG, INFO, WARNING or ERROR")
    reset_logging()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [_StderrHandler()]
    path = log_file or settings.log_file
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(path, encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot write the log file {path}: {e.strerror or e}") from None
    flt = (redactor or LOG_REDACTOR).logging_filter()
    root = logging.getLogger()
    for h in handlers:
        h.setFormatter(fmt)
        h.addFilter(flt)
        setattr(h, _HANDLER_TAG, True)
        root.addHandler(h)
    root.setLevel(level)


def reset_logging() -> None:
    """Remove (and close) the handlers configure_logging added."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _HANDLER_TAG, False):
            root.removeHandler(h)
            h.close()
