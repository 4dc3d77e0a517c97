"""`Settings`, and `load_settings`: flags > environment > file > defaults, with errors that name where a
bad value was set."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from orchestrator.config.sections import (
    CelerySettings,
    CertSettings,
    DeploySettings,
    Executor,
    SshSettings,
    TrustSettings,
    VerifySettings,
    WaveSettings,
)
from orchestrator.config.sources import (
    CONFIG_ENV,
    BoundedToml,
    ConfigError,
    config_file_path,
    database_url_problem,
    default_actor,
    default_data_dir,
    read_config_file,
)


class Settings(BaseSettings):
    """Everything the controller reads from its configuration (see `orchestrator.config` for sources)."""

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
    actor: str = Field(default_factory=default_actor)
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
        toml = BoundedToml(settings_cls, toml_file=config_file_path())
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
