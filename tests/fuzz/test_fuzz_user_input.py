"""The readers and parsers a user feeds — inventory loaders, CA and PFX readers, the CA key reader, the DMG
reader, configuration, flag parsers (waves, thresholds, durations), run ids, host names and the bounded
file reader — fed arbitrary and mutated input: a value or our typed error, never another exception, in
bounded time and memory."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from inventory import FORMATS, InventoryError, loads
from inventory.names import host_name_problem
from inventory.userfiles import FileKind, UserFileError, read_user_file
from macsim.client1e.dmg import build_dmg
from orchestrator import artifacts, runs
from orchestrator.certs.issue import IssueError, load_ca_key
from orchestrator.certs.pfx import PfxError, open_pfx, pfx_algorithms
from orchestrator.certs.x509info import CertificateLoadError, load_certificates
from orchestrator.config import ConfigError, Settings, database_url_problem, load_settings
from orchestrator.state.db import open_state_database
from orchestrator.waves import WaveSpecError, parse_duration, parse_threshold, parse_waves
from tests.fuzz.conftest import FUZZ, FUZZ_WITH_FIXTURE, TIME_LIMIT, value_or
from tests.orchestrator.certs import certmaterial as m

pytestmark = pytest.mark.timeout(TIME_LIMIT)


def mutated(seed: bytes) -> st.SearchStrategy[bytes]:
    """seed cut short, with bytes flipped, or with bytes inserted: what a bad download or copy gives."""
    n = len(seed)
    cut = st.integers(0, n).map(lambda i: seed[:i])
    flips = st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 255)), min_size=1, max_size=8).map(
        lambda fl: bytes(_flip(seed, fl))
    )
    inserted = st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=64)).map(
        lambda t: seed[: t[0]] + t[1] + seed[t[0] :]
    )
    return st.one_of(cut, flips, inserted)


def _flip(seed: bytes, flips: list[tuple[int, int]]) -> bytearray:
    b = bytearray(seed)
    for i, v in flips:
        b[i] = v
    return b


# ------------------------------------------------------------- inventory

_INV_WORDS = [
    "hosts:", "groups:", "  mac01:", "    address: 10.0.0.1", "    port: 22", "    groups: [lab]", "children:",
    "vars:", "[lab]", "[lab:children]", "[lab:vars]", "mac01 ansible_host=10.0.0.1", "name,address,groups",
    "mac01,10.0.0.1,lab", "all:", "  hosts:", "ansible_port=", "&a", "*a", "!!python/object", "<<: *a", "- x",
    "{", "}", "[", "]", ",", ":", "'", '"', "#", "MAC01", "mac01", "\t", "---", "...", "%YAML 1.1",
]  # fmt: skip
# Deep nesting: parsers that recurse (PyYAML's composer, tomllib) must not leak RecursionError.
NESTED = st.tuples(
    st.sampled_from(["[", "{a: ", "- ", "children:\n  ", "a = ["]),
    st.one_of(st.integers(1, 100), st.sampled_from([1000, 3000, 10000])),
).map(lambda t: t[0] * t[1])
INVENTORY_TEXT = st.one_of(
    NESTED,
    st.text(max_size=1500),
    st.lists(
        st.lists(st.sampled_from(_INV_WORDS) | st.text(max_size=8), max_size=5).map(" ".join), max_size=30
    ).map("\n".join),
)


@FUZZ
@given(text=INVENTORY_TEXT, fmt=st.sampled_from([None, *FORMATS]), name=st.sampled_from(
    ["fleet.yaml", "fleet.csv", "hosts.ini", "inventory", "x.yml"]))  # fmt: skip
def test_inventory_loaders(text: str, fmt: str | None, name: str) -> None:
    value_or((InventoryError,), lambda: loads(text, name, fmt))


@FUZZ
@given(name=st.text(max_size=300))
def test_host_name_check(name: str) -> None:
    problem = value_or((), lambda: host_name_problem(name))
    assert problem is None or isinstance(problem, str)


# ------------------------------------------------------------- certificates, keys, PFX

_LAB = m.lab()
_KEY, _CERT = m.make_leaf(m.Leaf(cn="mac-01.local"), _LAB["inter"])
PEM = m.pem(_CERT, _LAB["inter"][0])
DER = m.der(_CERT)
PFX = m.pfx(_KEY, _CERT, [_LAB["inter"][0]], b"pw")


@FUZZ
@given(data=st.one_of(st.binary(max_size=3000), mutated(PEM), mutated(DER)))
def test_ca_certificate_reader(data: bytes) -> None:
    value_or((CertificateLoadError,), lambda: load_certificates(data, "fuzz.pem"))


@FUZZ
@given(data=st.one_of(st.binary(max_size=2000), mutated(PEM)))
def test_ca_key_reader(data: bytes) -> None:
    value_or((IssueError,), lambda: load_ca_key(data, "fuzz.key"))


@FUZZ
@given(data=st.one_of(st.binary(max_size=2000), mutated(PFX)), password=st.sampled_from([b"pw", b"", b"x"]))
def test_pfx_reader(data: bytes, password: bytes) -> None:
    value_or((PfxError,), lambda: open_pfx(data, password, "fuzz.pfx"))
    value_or((PfxError,), lambda: pfx_algorithms(data))


# ------------------------------------------------------------- the DMG reader

DMG = build_dmg("8.1.2.62")


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=4000), mutated(DMG), st.binary(max_size=600).map(lambda b: b + DMG[-512:])
    )
)
def test_dmg_reader(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "1e.client-macOS_v8.1.2.62.dmg"
        path.write_bytes(data)
        value_or((artifacts.ArtifactInputError,), lambda: artifacts.validate_dmg(path))


@FUZZ
@given(name=st.text(max_size=80))
def test_dmg_file_name_versions(name: str) -> None:
    version = artifacts.version_from_filename(name)
    assert version is None or artifacts.is_version(version)


# ------------------------------------------------------------- the bounded reader


@FUZZ
@given(data=st.binary(max_size=300), limit=st.integers(0, 300))
def test_bounded_reader(data: bytes, limit: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f"
        path.write_bytes(data)
        got = value_or((UserFileError,), lambda: read_user_file(path, FileKind("test file", limit)))
    if len(data) <= limit:
        assert got == data
    else:
        assert isinstance(got, UserFileError) and "larger than" in str(got)


# ------------------------------------------------------------- configuration

_KEYS = {
    "": ["data_dir", "database_url", "executor", "log_level", "actor", "secret_key_file", "bogus"],
    "deploy": ["switch", "version", "verify_timeout", "lease_ttl", "bogus"],
    "ssh": ["concurrency", "connect_timeout", "known_hosts", "client_keys", "trust_on_first_use"],
    "waves": ["waves", "max_failures", "pause"],
    "celery": ["broker_url", "task_time_limit", "worker_concurrency"],
}
_TOML_VALUE = st.one_of(
    st.text(max_size=30).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    st.integers().map(str), st.floats(allow_nan=True).map(lambda f: repr(f).replace("inf", "inf")),
    st.sampled_from(["true", "false", "[]", '["a", 1]', "{}", '"1,5%,25%,100%"', '"2%"', '"sqlite:///x.db"',
                     '"postgresql://u:p@h/db"', '"garbage://"', '"1,banana"', "nan", "-inf"]),
)  # fmt: skip


@st.composite
def toml_text(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["text", "nested", "settings", "settings"]))
    if kind == "text":
        return draw(st.text(max_size=400))
    if kind == "nested":
        return "actor = " + draw(NESTED)
    lines: list[str] = []
    for section in draw(st.lists(st.sampled_from(list(_KEYS)), max_size=4, unique=True)):
        if section:
            lines.append(f"[{section}]")
        for key in draw(st.lists(st.sampled_from(_KEYS[section]), max_size=4, unique=True)):
            lines.append(f"{key} = {draw(_TOML_VALUE)}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def config_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    for var in list(os.environ):
        if var.startswith("ORCHESTRATE_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    path = tmp_path / "orchestrate.toml"
    monkeypatch.setenv("ORCHESTRATE_CONFIG", str(path))
    yield path


@FUZZ_WITH_FIXTURE
@given(text=toml_text())
def test_configuration(config_env: Path, text: str) -> None:
    config_env.write_text(text, encoding="utf-8", errors="surrogatepass")
    got = value_or((ConfigError,), load_settings)
    assert isinstance(got, Settings | ConfigError)


@FUZZ
@given(url=st.one_of(st.text(max_size=120), st.sampled_from(["sqlite", "postgresql", "postgres", "mysql", ""])
       .flatmap(lambda s: st.text(max_size=60).map(lambda rest: f"{s}://{rest}"))))  # fmt: skip
def test_database_url_check(url: str) -> None:
    problem = value_or((), lambda: database_url_problem(url))
    assert problem is None or "postgresql://" in problem


# ------------------------------------------------------------- flags: waves, thresholds, durations

_FLAG = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(st.integers(-5, 10**6).map(str), st.floats().map(lambda f: f"{f}%"), st.text(max_size=4)),
             max_size=6).map(",".join),
)  # fmt: skip


@FUZZ
@given(text=_FLAG, total=st.integers(0, 10_000))
def test_waves_flag(text: str, total: int) -> None:
    sizes = value_or((WaveSpecError,), lambda: parse_waves(text, total))
    if isinstance(sizes, list):
        assert sizes == sorted(set(sizes)) and all(0 < s <= total for s in sizes)
        assert not total or sizes[-1] == total


@FUZZ
@given(text=_FLAG)
def test_threshold_flag(text: str) -> None:
    value_or((WaveSpecError,), lambda: parse_threshold(text))


@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=30), st.from_regex(r"[0-9.]{0,6}[smhd]?([0-9.]{0,4}[smhd])?", fullmatch=True)
    )
)
def test_duration_flag(text: str) -> None:
    seconds = value_or((WaveSpecError,), lambda: parse_duration(text))
    if isinstance(seconds, float):
        assert seconds >= 0 and seconds != float("inf")


# ------------------------------------------------------------- run ids


@pytest.fixture(scope="module")
def run_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = open_state_database(f"sqlite:///{tmp_path_factory.mktemp('runs') / 'runs.db'}")
    yield engine
    engine.dispose()


@FUZZ_WITH_FIXTURE
@given(ref=st.text(max_size=60))
def test_run_id(run_db: Engine, ref: str) -> None:
    with Session(run_db) as s:
        value_or((runs.RunError,), lambda: runs.find_run(s, ref))
