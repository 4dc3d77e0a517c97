"""Fixtures for the macsim SSH server tests: a small fleet on 127.0.0.1 and a transport-only shell.

`transport_exec` is a deliberately tiny stand-in for the macsim shell so the server's transport (stdin
streaming, exit status, cancellation, logging) is tested on its own; the shell has its own tests. It knows:
`echo WORDS`, `cat` (stdin to stdout), `exit N`, `sleep SECONDS`, `stderr WORDS`, `readline` (one line of
stdin echoed back), `whoami`, `hostname`. Anything else: `zsh: command not found: X`, status 127.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from macsim.fleet import Fleet, SimHost
from macsim.mac import VirtualMac
from macsim.shell.proc import Output, Stdin
from macsim.spec import FleetSpec, parse_spec


async def transport_exec(mac: VirtualMac, command: str, stdin: Stdin, stdout: Output, stderr: Output) -> int:
    status = 0
    for line in command.splitlines() or [""]:
        argv = shlex.split(line)
        if not argv:
            continue
        name, args = argv[0], argv[1:]
        if name == "echo":
            stdout.write(" ".join(args) + "\n")
            status = 0
        elif name == "stderr":
            stderr.write(" ".join(args) + "\n")
            status = 0
        elif name == "cat":
            while chunk := await stdin.read(65536):
                stdout.write(chunk)
            status = 0
        elif name == "readline":
            stdout.write(await stdin.readline())
            status = 0
        elif name == "exit":
            return int(args[0]) if args else status
        elif name == "sleep":
            await asyncio.sleep(float(args[0]))
            status = 0
        elif name == "whoami":
            stdout.write(mac.spec.user + "\n")
            status = 0
        elif name == "hostname":
            stdout.write(mac.hostname + "\n")
            status = 0
        else:
            stderr.write(f"zsh: command not found: {name}\n")
            status = 127
    return status


def small_spec(n: int = 2, **host_fields: Any) -> FleetSpec:
    """A spec of n hosts named mac-01.. with the given fields on every host."""
    return parse_spec({"hosts": [{"name": f"mac-{i + 1:02d}", **host_fields} for i in range(n)]})


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    """Two hosts, password set on mac-02, transport-only shell."""
    spec = parse_spec(
        {
            "hosts": [
                {"name": "mac-01", "arch": "arm64"},
                {"name": "mac-02", "password": "hunter2-test", "user": "ops", "uid": 502},
            ]
        }
    )
    async with Fleet.start(spec, tmp_path / "state", exec_handler=transport_exec) as f:
        yield f


@pytest.fixture
def host(fleet: Fleet) -> SimHost:
    return fleet.hosts["mac-01"]


def connect(fleet: Fleet, host: SimHost, **kwargs: Any) -> Any:
    """asyncssh.connect to a host with the fleet key and strict host key checking (overridable)."""
    opts: dict[str, Any] = {**host.connect_kwargs(fleet.client_key_path), "connect_timeout": 10}
    opts.update(kwargs)
    return asyncssh.connect(**opts)
