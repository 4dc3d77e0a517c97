"""Settings, from (highest first): flags > environment (`ORCHESTRATE_*`) > `orchestrate.toml` > defaults.

- File: `orchestrate.toml` in the working directory, or the path in `ORCHESTRATE_CONFIG` (which must exist).
  Sections match the nested settings: `[deploy]`, `[ssh]`, `[waves]`, `[celery]`. Unknown keys are errors,
  so a typo does not silently fall back to a default.
- Environment: `ORCHESTRATE_<FIELD>`, nested with a double underscore: `ORCHESTRATE_SSH__CONCURRENCY=50`.
- Flags: CLI commands pass their options as overrides to `load_settings` (nested as dicts:
  `{"ssh": {"concurrency": 50}}`); only the keys given override, the rest of a section is kept.

Data directory: `~/.local/share/macfleet` (or `$XDG_DATA_HOME/macfleet`) holds the SQLite database
(`macfleet.db`), the secret key (`secret.key`) and the artifact store (`artifacts/`).

By duty: `sources` (file, paths, database URL check), `sections` (each `[section]`), `settings` (Settings
and load_settings), `logs` (configure_logging).
"""

from orchestrator.config.logs import configure_logging, reset_logging
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
from orchestrator.config.settings import Settings, load_settings
from orchestrator.config.sources import (
    CONFIG_ENV,
    DEFAULT_CONFIG_FILE,
    ConfigError,
    config_file_path,
    database_url_problem,
    default_data_dir,
    read_config_file,
)

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_FILE",
    "CelerySettings",
    "CertSettings",
    "ConfigError",
    "DeploySettings",
    "Executor",
    "Settings",
    "SshSettings",
    "TrustSettings",
    "VerifySettings",
    "WaveSettings",
    "config_file_path",
    "configure_logging",
    "database_url_problem",
    "default_data_dir",
    "load_settings",
    "read_config_file",
    "reset_logging",
]
