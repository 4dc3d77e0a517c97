"""The verify poll script under REAL shells (dash as POSIX sh, bash in POSIX mode like macOS's /bin/sh, zsh in
sh emulation), not only macsim's interpreter: stand-ins for the two macOS-only tools it calls (`launchctl
print`, BSD `stat -f %z`) on PATH; grep, head, tr, tail -c +N, printf and sleep are the host's own.

The stand-ins print what a running job and a BSD stat print (tests/tasks/fixtures/facts/launchd, log_mark);
lsof is called by absolute path and is absent or sees no such PID here, so only the log signal can fire."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tasks.install.verify import PollSpec, judge_connected, parse_poll
from tasks.model import ProbeOutput

SHELLS = [
    s for s in (["dash", "-c"], ["bash", "--posix", "-c"], ["zsh", "--emulate", "sh", "-c"]) if shutil.which(s[0])
]
LAUNCHCTL = """#!/bin/sh
[ "$1" = print ] || exit 64
printf 'system/com.1e.pkg.1E.Client = {\\n\\tstate = running\\n\\tpid = 4242\\n\\tlast exit code = (never exited)\\n}\\n'
"""
STAT = """#!/bin/sh
[ "$1" = -f ] && [ "$2" = %z ] || exit 64
[ -e "$3" ] || { echo "stat: $3: stat: No such file or directory" >&2; exit 1; }
wc -c < "$3" | tr -d ' '
"""


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("launchctl", LAUNCHCTL), ("stat", STAT)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _poll(shell: list[str], tools: Path, spec: PollSpec, log: Path) -> ProbeOutput:
    argv = spec.argv()
    args = list(argv[3:])
    args[2] = str(log)  # $2, the log's path: the stand-in log lives in tmp_path
    env = {"PATH": f"{tools}:/usr/bin:/bin", "LC_ALL": "C"}
    done = subprocess.run([*shell, argv[2], *args], capture_output=True, text=True, env=env, timeout=30)
    return ProbeOutput(argv, done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_poll_finds_the_line_after_the_mark(shell: list[str], tools: Path, tmp_path: Path) -> None:
    log = tmp_path / "1E.Client.log"
    before = "t ERROR no client certificate found matching m.local\n"
    log.write_text(before + "t INFO 1E Client starting\nt INFO Switch session established with s:4000\n")
    out = _poll(shell, tools, PollSpec("s:4000", mark=len(before), rounds=5, pause=0.05), log)
    assert out.exit_status == 0, out.stderr
    poll = parse_poll(out)
    assert (poll.rounds, poll.mac_verdict, poll.job.pid) == (1, "logged", 4242)
    assert "ERROR" not in poll.log  # what came before the mark is not read
    assert judge_connected([out]).done


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_poll_runs_out_its_rounds_then_stops(shell: list[str], tools: Path, tmp_path: Path) -> None:
    log = tmp_path / "1E.Client.log"
    log.write_text("t INFO 1E Client starting\n")
    started = time.monotonic()
    out = _poll(shell, tools, PollSpec("s:4000", mark=0, rounds=4, pause=0.1), log)
    assert time.monotonic() - started < 10
    poll = parse_poll(out)
    assert (poll.rounds, poll.mac_verdict, poll.log_size) == (4, "pending", len(log.read_bytes()))
    assert judge_connected([out]).pending


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_poll_stops_on_an_error_line(shell: list[str], tools: Path, tmp_path: Path) -> None:
    log = tmp_path / "1E.Client.log"
    log.write_text("t [error] Certificate chain for m.local is not trusted\n")
    out = _poll(shell, tools, PollSpec("s:4000", mark=None, rounds=50, pause=0.1), log)
    poll = parse_poll(out)
    assert (poll.rounds, poll.mac_verdict) == (1, "error")
    v = judge_connected([out])
    assert v.failure is not None and v.failure.error_type == "NotConnected"
