"""Configuration precedence: flags > environment > orchestrate.toml > defaults, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import ConfigError, Executor, Settings, load_settings


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def cfg(orchestrate_env: Path, tmp_path: Path) -> Path:
    """The config file orchestrate_env points ORCHESTRATE_CONFIG at."""
    return tmp_path / "orchestrate.toml"


def test_defaults_without_file(orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCHESTRATE_CONFIG")
    monkeypatch.chdir(orchestrate_env.parent.parent)  # no ./orchestrate.toml there
    s = load_settings()
    assert s.data_dir == orchestrate_env
    assert s.effective_database_url == f"sqlite:///{orchestrate_env / 'macfleet.db'}"
    assert s.effective_secret_key_file == orchestrate_env / "secret.key"
    assert s.effective_artifact_dir == orchestrate_env / "artifacts"
    assert s.executor is Executor.LOCAL
    assert s.ssh.trust_on_first_use is False
    assert s.ssh.concurrency == 20
    assert s.deploy.switch is None
    assert s.celery.broker_url.startswith("redis://127.0.0.1")


def test_xdg_data_home_is_read_when_settings_are_built(
    orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "elsewhere"))
    assert Settings().data_dir == tmp_path / "elsewhere" / "macfleet"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Settings().data_dir == tmp_path / "home" / ".local" / "share" / "macfleet"


def test_file_then_env_then_flags(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(
        cfg,
        'executor = "celery"\ndatabase_url = "postgresql://file/db"\n'
        '[ssh]\nconcurrency = 7\nconnect_timeout = 3\n[deploy]\nswitch = "file:4000"\nversion = "8.1"\n',
    )
    s = load_settings()
    assert (s.executor, s.database_url, s.ssh.concurrency, s.deploy.switch) == (
        Executor.CELERY, "postgresql://file/db", 7, "file:4000",
    )  # fmt: skip

    monkeypatch.setenv("ORCHESTRATE_DATABASE_URL", "postgresql://env/db")
    monkeypatch.setenv("ORCHESTRATE_SSH__CONCURRENCY", "9")
    s = load_settings()
    assert s.database_url == "postgresql://env/db"
    assert s.ssh.concurrency == 9
    assert s.ssh.connect_timeout == 3  # the rest of the file's [ssh] section is kept

    s = load_settings({"ssh": {"concurrency": 50, "known_hosts": None}, "deploy": {"switch": "flag:4000"}})
    assert s.ssh.concurrency == 50
    assert s.ssh.connect_timeout == 3
    assert s.deploy.switch == "flag:4000"
    assert s.deploy.version == "8.1"  # a section partly overridden by flags keeps the file's other keys
    assert s.database_url == "postgresql://env/db"


def test_none_flags_do_not_override(cfg: Path) -> None:
    _write(cfg, '[deploy]\nswitch = "file:4000"\n')
    assert load_settings({"deploy": {"switch": None}, "executor": None}).deploy.switch == "file:4000"


def test_unknown_key_in_file_is_an_error_naming_it(cfg: Path) -> None:
    _write(cfg, "[ssh]\nconcurency = 5\n")
    with pytest.raises(ConfigError, match=r"ssh\.concurency: Extra inputs are not permitted") as ei:
        load_settings()
    assert str(cfg) in str(ei.value)


def test_bad_value_is_an_error(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATE_EXECUTOR", "kubernetes")
    with pytest.raises(ConfigError, match=r"executor: Input should be 'local' or 'celery'"):
        load_settings()
    monkeypatch.delenv("ORCHESTRATE_EXECUTOR")
    with pytest.raises(ConfigError, match=r"ssh\.concurrency: Input should be greater than or equal to 1"):
        load_settings({"ssh": {"concurrency": 0}})


def test_malformed_toml_is_an_error(cfg: Path) -> None:
    _write(cfg, "[ssh\nconcurrency = 5\n")
    with pytest.raises(ConfigError, match=r"cannot read configuration file .*orchestrate\.toml"):
        load_settings()


def test_missing_file_named_by_env_is_an_error(
    orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATE_CONFIG", "/nonexistent/macfleet.toml")
    with pytest.raises(
        ConfigError, match=r"ORCHESTRATE_CONFIG names /nonexistent/macfleet.toml, which does not exist"
    ):
        load_settings()


def test_secret_key_is_not_in_repr_or_errors(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATE_SECRET_KEY", "canary-key-material-1234")
    s = load_settings()
    assert "canary-key-material-1234" not in repr(s)
    monkeypatch.setenv("ORCHESTRATE_SSH__CONCURRENCY", "lots")
    with pytest.raises(ConfigError) as ei:
        load_settings()
    assert "canary-key-material-1234" not in str(ei.value)


def test_verify_patterns_are_checked_at_start_up(cfg: Path) -> None:
    assert load_settings().verify.rules().is_connected("INFO Connected to Switch s:4000 as m.local")
    cfg.write_text('[verify]\nconnected_patterns = ["session up"]\n')
    assert load_settings().verify.rules().connected == ("session up",)
    for bad, why in [
        ('connected_patterns = ["conn(ected"]', r"verify\.connected_patterns: .*not a valid regex"),
        ('error_patterns = ["\\\\berror\\\\b"]', r"verify\.error_patterns: .*grep -E"),
        ("connected_patterns = []", "at least one pattern"),
    ]:
        cfg.write_text(f"[verify]\n{bad}\n")
        with pytest.raises(ConfigError, match=why):
            load_settings()
