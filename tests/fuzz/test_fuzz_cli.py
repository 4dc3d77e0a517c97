"""The CLI's flag parsers in their real context: commands that only read (or are refused before writing)
given arbitrary flag values exit 0, 1 or 2 with a message — never a traceback, never a hang — and write no
run, job or device. (The wave flags are fuzzed directly in test_fuzz_user_input: `upgrade` checks the
artifact first, and a valid one would start a real run.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import Session, select
from typer.testing import CliRunner

import orchestrator.cli
from orchestrator.cli import context
from orchestrator.state.models import Device, DeviceJob, Run
from tests.fuzz.conftest import FUZZ_WITH_FIXTURE, TIME_LIMIT

pytestmark = pytest.mark.timeout(TIME_LIMIT)
orchestrator.cli._register()

# Flag values: arbitrary text, and near misses of what each flag accepts. No NUL: argv cannot hold one.
VALUE = st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=24),
    st.sampled_from(["1,5%,25%,100%", "0", "-1", "101%", "nan%", "1e9", "2h", "1h30m", "90", ".", "%", ",",
                     "*", "!*", "mac-[", "[!]", "8.1.2.62", "8..1", "\\", "--", "-v"]),
)  # fmt: skip


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("cli")
    for var in list(os.environ):
        if var.startswith("ORCHESTRATE_"):
            mp.delenv(var)
    mp.setenv("XDG_DATA_HOME", str(base / "data"))
    (base / "orchestrate.toml").write_text("")
    mp.setenv("ORCHESTRATE_CONFIG", str(base / "orchestrate.toml"))
    context.settings.cache_clear()
    context.engine.cache_clear()
    inv = base / "fleet.csv"
    inv.write_text("name,address,groups\nmac-01,127.0.0.1,lab\n")
    assert CliRunner().invoke(orchestrator.cli.app, ["inventory", "import", str(inv)]).exit_code == 0
    yield base
    context.engine().dispose()
    context.engine.cache_clear()
    context.settings.cache_clear()
    mp.undo()


@st.composite
def command(draw: st.DrawFn) -> list[str]:
    v = draw(VALUE)
    return draw(
        st.sampled_from(
            [
                ["status", "--group", v],
                ["status", "--limit", v, "--json"],
                ["inventory", "list", "--limit", v],
                ["inventory", "show", v],
                ["runs", "show", v],
                ["runs", "show", v, "--json"],
                ["upgrade", "--to", v, "--limit", "nothing-matches"],
                ["upgrade", "--to", "8.1.2.62", "--max-failures", v, "--limit", "mac-01"],
                ["upgrade", "--to", "8.1.2.62", "--pause", v, "--limit", "mac-01"],
                ["upgrade", "--to", "8.1.2.62", "--retry-unreachable", v, "--limit", "mac-01"],
                ["deploy", "--limit", v, "--switch", v],
                ["artifact", "remove", v, "--yes"],
                ["certs", "check", "--group", v],
            ]
        )
    )  # fmt: skip


@FUZZ_WITH_FIXTURE
@given(argv=command())
def test_cli_flags(cli_env: Path, argv: list[str]) -> None:
    res = CliRunner().invoke(orchestrator.cli.app, argv)
    assert res.exception is None or isinstance(res.exception, SystemExit), (argv, res.exception)
    assert res.exit_code in (0, 1, 2), (argv, res.exit_code, res.output)
    assert "Traceback" not in res.output
    with Session(context.engine()) as s:
        assert s.exec(select(Run)).first() is None, argv
        assert s.exec(select(DeviceJob)).first() is None, argv
        assert [d.name for d in s.exec(select(Device)).all()] == ["mac-01"]
