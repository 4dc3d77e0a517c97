"""The trust step's watchdog (tasks/install/trust.py) over a real OpenSSH sshd and rendered under sh, bash
and zsh: a command that never answers is killed at its bound, the exec goes on to its next line, and
neither the command nor the watchdog's sleep outlives the session or holds it open."""

from __future__ import annotations

import os
import secrets
import subprocess
import time

import pytest

from tasks.install.trust import TIMEOUT_NOTE, TIMEOUT_STATUS, TRUST_OK_CODES, bounded
from workers.ssh import Connection, ScriptLine, render

SHELLS = [sh for sh in ("/bin/sh", "/bin/bash", "/usr/bin/zsh", "/bin/zsh") if os.path.exists(sh)]


def _pids(tag: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", tag], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


async def test_a_hung_command_is_killed_and_the_exec_goes_on(conn: Connection) -> None:
    tag = f"30.{secrets.randbelow(10**8):08d}"
    lines = [
        ScriptLine(list(bounded(("sleep", tag), timeout=1)), ok_codes=TRUST_OK_CODES),
        ScriptLine(["printf", "after"]),
    ]
    t0 = time.monotonic()
    try:
        result = await conn.run_script(lines, timeout=20)
        took = time.monotonic() - t0
        assert took < 5, took  # the bound, not the command, and no sleep holding the channel open
        first, second = result.steps
        assert first.exit_status == TIMEOUT_STATUS and TIMEOUT_NOTE.encode() in first.stderr
        assert (second.exit_status, second.stdout) == (0, b"after")
        assert _pids(f"sleep {tag}") == []
    finally:
        for pid in _pids(f"sleep {tag}"):
            os.kill(pid, 9)


async def test_a_quick_command_keeps_its_status_and_output(conn: Connection) -> None:
    t0 = time.monotonic()
    result = await conn.run_script([ScriptLine(list(bounded(("sh", "-c", "echo out; echo err >&2; exit 1"))),
                                               ok_codes=TRUST_OK_CODES)])  # fmt: skip
    assert time.monotonic() - t0 < 3  # not the 10 s bound
    step = result.steps[0]
    assert (step.exit_status, step.stdout, step.stderr) == (1, b"out\n", b"err\n")


@pytest.mark.parametrize("shell", SHELLS)
def test_the_rendered_watchdog_runs_the_same_in_each_shell(shell: str) -> None:
    argv = list(bounded(("printf", "<%s>", "it's", "$HOME", "a b"), timeout=5))
    done = subprocess.run([shell, "-c", render(argv)], capture_output=True, timeout=10)
    assert (done.returncode, done.stdout) == (0, b"<it's><$HOME><a b>")
    t0 = time.monotonic()
    done = subprocess.run([shell, "-c", render(list(bounded(("sleep", "20"), timeout=1)))],
                          capture_output=True, timeout=10)  # fmt: skip
    assert done.returncode == TIMEOUT_STATUS and TIMEOUT_NOTE.encode() in done.stderr
    assert time.monotonic() - t0 < 4
