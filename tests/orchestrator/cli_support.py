"""Driving `orchestrate` in-process against a lab (tests/workers/lab.py): the environment a command reads
and a runner that leaves the event loop free for the simulated Macs."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner, Result

import orchestrator.cli as cli
from tests.workers.lab import SWITCH, Lab

URL = "https://tachyon.lab.test:443/Background/"


def cli_env(L: Lab, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """ORCHESTRATE_* for the lab's database, data dir, secret key, known_hosts, Switch and a 20 s verify."""
    st = L.settings
    for var, value in {
        "DATABASE_URL": engine.url.render_as_string(hide_password=False), "DATA_DIR": str(st.data_dir),
        "SECRET_KEY": str(st.secret_key), "SSH__KNOWN_HOSTS": str(st.ssh.known_hosts),
        "DEPLOY__SWITCH": SWITCH, "DEPLOY__BACKGROUND_URL": URL, "DEPLOY__VERIFY_TIMEOUT": "20",
    }.items():  # fmt: skip
        monkeypatch.setenv(f"ORCHESTRATE_{var}", value)
    cli._register()


async def run(*args: str) -> Result:
    # a worker thread: the simulated Macs are served by this test's event loop
    return await asyncio.to_thread(CliRunner().invoke, cli.app, list(args))


def last_log(L: Lab, name: str) -> str:
    """The last line of the Mac's 1E Client log."""
    return L.fleet.hosts[name].mac.fs.read_text("/Library/Logs/1E.Client.log").strip().splitlines()[-1]
