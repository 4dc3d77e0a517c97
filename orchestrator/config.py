"""Settings: flags > environment (ORCHESTRATE_*) > orchestrate.toml > defaults."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def default_data_dir() -> Path:
    """~/.local/share/macfleet (XDG_DATA_HOME respected): the SQLite file, artifact store, secret key."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "macfleet"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORCHESTRATE_", extra="forbid", toml_file="orchestrate.toml")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None  # default: sqlite:///<data_dir>/macfleet.db
    secret_key_file: Path | None = None  # default: <data_dir>/secret.key
    secret_key: str | None = None  # a Fernet key given directly (env ORCHESTRATE_SECRET_KEY)
    actor: str = os.environ.get("USER", "operator")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = os.environ.get("ORCHESTRATE_CONFIG", "orchestrate.toml")
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml))

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'macfleet.db'}"

    @property
    def effective_secret_key_file(self) -> Path:
        return self.secret_key_file or self.data_dir / "secret.key"
