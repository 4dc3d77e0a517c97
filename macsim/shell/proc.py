"""The contract between the shell and every emulated command (utilities and macOS tools).

A command is `async def tool(p: Proc) -> int`. It reads `p.stdin` (streamed from the SSH channel or a pipe),
writes bytes or text to `p.stdout` / `p.stderr`, and returns its exit status. It must not touch the host's
disk except through `p.mac.fs` with permission checks for `p.uid`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from macsim.mac import VirtualMac


class Stdin(Protocol):
    async def read(self, n: int = -1) -> bytes:
        """Up to n bytes (all until EOF when n < 0); b'' at EOF."""
        ...

    async def readline(self) -> bytes:
        """One line including its newline; the rest at EOF without one; b'' at EOF."""
        ...


class Output(Protocol):
    def write(self, data: bytes | str) -> None: ...


@dataclass
class Session:
    """What lives as long as one exec request: sudo's cached credentials (keyed by parent, as sudo does
    without a tty), background state. One per SSH exec."""

    sudo_validated_at: float | None = None
    vars: dict[str, str] = field(default_factory=dict)
    # background jobs (`cmd &`) by pid: what runs (`kill` cancels it), its status (`wait PID` awaits it),
    # and the signal a killed one got
    running: dict[int, asyncio.Task[int]] = field(default_factory=dict)
    jobs: dict[int, asyncio.Task[int]] = field(default_factory=dict)
    signals: dict[int, int] = field(default_factory=dict)


@dataclass
class Proc:
    mac: VirtualMac
    argv: list[str]
    env: dict[str, str]
    cwd: str
    uid: int  # 0 for root (after sudo), otherwise the SSH user's uid
    user: str
    stdin: Stdin
    stdout: Output
    stderr: Output
    session: Session
    runner: Runner | None = None  # the shell, for tools that run commands (sudo, xargs, env, sh -c)

    @property
    def name(self) -> str:
        return self.argv[0].rsplit("/", 1)[-1]

    def err(self, msg: str) -> None:
        self.stderr.write(msg if msg.endswith("\n") else msg + "\n")

    def out(self, msg: str) -> None:
        self.stdout.write(msg if msg.endswith("\n") else msg + "\n")

    def path(self, p: str) -> str:
        """An argument path made absolute against the cwd."""
        return self.mac.fs.normalize(p, self.cwd)


Tool = Callable[[Proc], Awaitable[int]]


class Runner(Protocol):
    """What tools that run other commands (sudo, xargs, sh -c) call back into: the shell. Passed in as
    `Proc.runner` so that no command module imports the shell that imports the commands."""

    async def run_argv(self, p: Proc) -> int: ...

    async def run_script(self, p: Proc, script: str) -> int: ...

    async def run_script_file(self, p: Proc, path: str, dialect: str) -> int: ...

    async def run_tool(self, p: Proc, tool_name: str, scripts: bool = False) -> int: ...

    async def run_shell(
        self,
        p: Proc,
        dialect: Literal["zsh", "sh"],
        text: str,
        arg0: str,
        positional: list[str],
        *,
        script: str | None = None,
        errexit: bool = False,
        nounset: bool = False,
    ) -> int: ...


def runner_of(p: Proc) -> Runner:
    """The shell that started p (tools that run commands need it)."""
    if p.runner is None:
        raise RuntimeError(f"{p.name}: started without a shell runner")
    return p.runner
