"""Connection.run / run_script against a real OpenSSH sshd, and argv rendering under sh, bash and zsh."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.workers.sshd import Sshd
from workers.ssh import CommandTimeout, Connection, render, upload
from workers.ssh.exec import build_script, split_steps

NASTY = [
    "two words",
    "it's",
    'say "hi"',
    "$HOME and ${PATH} and $(id) and `id`",
    "a; rm -rf /tmp/nothing-here; b",
    "line one\nline two\n",
    "tab\there",
    "back\\slash",
    "*?[glob]",
    "~",
    "#not-a-comment",
    "-n",
    "",
    "é ü 漢字",
    "!bang",
    "a|b&c>d<e",
]


async def test_argv_arrives_byte_exact(conn: Connection) -> None:
    for arg in NASTY:
        result = await conn.run(["printf", "%s", arg])
        assert result.exit_status == 0, result.stderr
        assert result.stdout == arg.encode(), arg


async def test_many_arguments_keep_their_boundaries(conn: Connection) -> None:
    result = await conn.run(["printf", "<%s>\\n", *NASTY])
    expected = b"".join(b"<" + a.encode() + b">\n" for a in NASTY)
    assert result.stdout == expected


async def test_exit_status_and_stderr_are_returned_not_raised(conn: Connection) -> None:
    result = await conn.run(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (result.exit_status, result.stdout, result.stderr) == (7, b"out\n", b"err\n")
    assert not result.ok
    assert result.argv == ["sh", "-c", "echo out; echo err >&2; exit 7"]
    assert result.duration > 0


async def test_input_is_streamed_and_closed(conn: Connection) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one 256 KiB chunk and the channel window
    result = await conn.run(["sha256sum"], input=data)
    import hashlib

    assert result.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()


async def test_no_input_means_eof_not_a_hang(conn: Connection) -> None:
    result = await conn.run(["cat"], timeout=5)
    assert result.exit_status == 0 and result.stdout == b""


async def test_command_not_found_is_127(conn: Connection) -> None:
    result = await conn.run(["macfleet-no-such-command"])
    assert result.exit_status == 127


async def test_timeout_raises_and_kills_the_remote_command(conn: Connection, sshd: Sshd) -> None:
    tag = f"sleep 30.{secrets.randbelow(10**8):08d}"  # a unique command line to look for
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as caught:
        await conn.run(["sh", "-c", f"echo started; exec {tag}"], timeout=1.0)
    assert time.monotonic() - started < 3
    err = caught.value
    assert err.stdout == b"started\n"
    assert "did not finish within 1 s" in str(err)
    assert f"127.0.0.1:{sshd.port}" in str(err)
    # The remote process goes away (TERM/KILL signal requests, then the channel is closed). OpenSSH
    # refuses signal requests in a root login's session (privsep monitor), so as root we can only check
    # that the channel is closed and clean up ourselves.
    try:
        if os.geteuid() != 0:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _running(tag):
                time.sleep(0.05)
            assert not _running(tag)
    finally:
        for pid in _pids(tag):
            os.kill(pid, 9)
    # and the connection is still usable for the next command
    assert (await conn.run(["true"])).ok


def _pids(tag: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", tag], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def _running(tag: str) -> bool:
    return bool(_pids(tag))


async def test_bad_argv_is_rejected_before_anything_runs(conn: Connection) -> None:
    with pytest.raises(ValueError, match="empty argv"):
        await conn.run([])
    with pytest.raises(ValueError, match="NUL byte"):
        await conn.run(["printf", "a\x00b"])
    assert conn.round_trips == 0


async def test_script_steps_are_separable(conn: Connection) -> None:
    lines = [
        ["printf", "%s", "no newline at end"],
        ["sh", "-c", "echo to-err >&2; echo to-out"],
        ["printf", "%s\\n", "third", "$?"],
    ]
    result = await conn.run_script(lines)
    assert [s.exit_status for s in result.steps] == [0, 0, 0]
    assert result.steps[0].stdout == b"no newline at end"
    assert result.steps[1].stdout == b"to-out\n" and result.steps[1].stderr == b"to-err\n"
    assert result.steps[2].stdout == b"third\n$?\n"
    assert result.ok and result.exit_status == 0
    assert conn.round_trips == 1


async def test_script_stops_at_the_first_failure(conn: Connection) -> None:
    lines = [["true"], ["sh", "-c", "echo broke >&2; exit 3"], ["printf", "never"]]
    result = await conn.run_script(lines)
    assert [s.exit_status for s in result.steps] == [0, 3, None]
    assert result.steps[1].stderr == b"broke\n"
    assert not result.steps[2].ran and result.steps[2].stdout == b""
    assert result.exit_status == 3 and not result.ok


async def test_script_can_continue_after_a_failure(conn: Connection) -> None:
    lines = [["false"], ["printf", "after"]]
    result = await conn.run_script(lines, stop_on_error=False)
    assert [s.exit_status for s in result.steps] == [1, 0]
    assert result.steps[1].stdout == b"after"


def test_split_of_a_cut_short_script_marks_unfinished_steps() -> None:
    lines = [["a"], ["b"], ["c"]]
    out = b"A-out\nMARK-1 0 0\nB-part"
    steps = split_steps(lines, "MARK-1", out, b"")
    assert [s.exit_status for s in steps] == [0, None, None]
    assert steps[0].stdout == b"A-out" and steps[1].stdout == b"B-part"


def test_build_script_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="empty script"):
        build_script([], "M")
    with pytest.raises(ValueError, match="marker must be"):
        build_script([["true"]], "bad marker; rm")


SHELLS = [sh for sh in ("/bin/sh", "/bin/bash", "/usr/bin/zsh", "/bin/zsh") if os.path.exists(sh)]


def test_zsh_is_available_for_the_rendering_test() -> None:
    # macOS runs our commands under zsh: the rendering must be checked against it
    assert shutil.which("zsh"), "zsh is not installed: install it (apt-get install zsh) to test rendering"


@pytest.mark.parametrize("shell", SHELLS)
def test_rendering_round_trips_in_each_shell(shell: str) -> None:
    argv = ["printf", "<%s>", *NASTY]
    out = subprocess.run([shell, "-c", render(argv)], capture_output=True, check=True).stdout
    assert out == b"".join(b"<" + a.encode() + b">" for a in NASTY)


@pytest.mark.parametrize("shell", SHELLS)
@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(
        st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")), max_size=4
    )
)
def test_rendering_round_trips_any_text(shell: str, words: list[str]) -> None:
    argv = ["printf", "<%s>", *words] if words else ["printf", ""]
    out = subprocess.run([shell, "-c", render(argv)], capture_output=True, check=True).stdout
    assert out == b"".join(b"<" + w.encode() + b">" for w in words)


@pytest.mark.parametrize("shell", SHELLS)
def test_script_text_runs_the_same_in_each_shell(shell: str) -> None:
    lines = [["printf", "%s", "x y"], ["sh", "-c", "exit 4"], ["printf", "z"]]
    script = build_script(lines, "M-1", stop_on_error=True)
    done = subprocess.run([shell, "-c", script], capture_output=True)
    steps = split_steps(lines, "M-1", done.stdout, done.stderr)
    assert [s.exit_status for s in steps] == [0, 4, None]
    assert steps[0].stdout == b"x y"
    assert done.returncode == 4


async def test_run_on_a_dropped_connection_is_connection_lost(conn: Connection, sshd: Sshd) -> None:
    import asyncio

    from workers.ssh import ConnectionLost

    sshd.kill_sessions()
    deadline = time.monotonic() + 5
    while not conn.is_closed and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    with pytest.raises(ConnectionLost, match="reconnect and retry"):
        await conn.run(["true"])
    with pytest.raises(ConnectionLost, match="retry the upload"):
        await upload(conn, b"x", "/tmp/macfleet-never", "f")


def _unprivileged_login_account() -> str | None:
    """An existing non-root account with a real login shell, to run a non-root sshd as (root only)."""
    import pwd

    shells = set()
    if os.path.exists("/etc/shells"):
        shells = {line.strip() for line in open("/etc/shells") if line.strip().startswith("/")}
    for entry in pwd.getpwall():
        if entry.pw_uid >= 1000 and entry.pw_shell in shells and os.path.isdir(entry.pw_dir):
            return entry.pw_name
    return None


async def test_timeout_kills_the_command_in_a_non_root_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The Mac case: an admin (non-root) login, where OpenSSH honours the TERM/KILL signal requests."""
    import tempfile
    from pathlib import Path

    from tests.workers.sshd import start_sshd
    from workers.ssh import HostKeyPolicy, SshAuth, SshTarget, connect

    if os.geteuid() == 0:
        account = _unprivileged_login_account()
        if account is None:
            pytest.skip("running as root and no unprivileged login account exists to run a non-root sshd as")
        server = start_sshd(Path(tempfile.mkdtemp(prefix="macfleet-sshd-user-")), run_as=account)
    else:
        server = start_sshd(Path(tempfile.mkdtemp(prefix="macfleet-sshd-user-")))
    tag = f"sleep 30.{secrets.randbelow(10**8):08d}"
    try:
        conn = await connect(
            SshTarget("127.0.0.1", server.user, server.port),
            HostKeyPolicy.pin(list(server.host_keys.values())),
            SshAuth(key_files=(server.client_key,)),
        )
        async with conn:
            with pytest.raises(CommandTimeout):
                await conn.run(["sh", "-c", f"exec {tag}"], timeout=1.0)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _running(tag):
                time.sleep(0.05)
            assert not _running(tag), "the timed-out command is still running on the server"
    finally:
        for pid in _pids(tag):
            os.kill(pid, 9)
        server.stop()


@pytest.mark.parametrize("shell", SHELLS)
def test_script_lines_skip_close_stdin_and_accept_ok_codes(shell: str) -> None:
    from workers.ssh.exec import ScriptLine

    lines = [
        ScriptLine(["printf", "ran"], unless=["false"]),  # probe fails: the line runs
        ScriptLine(["printf", "never"], unless=["true"]),  # probe succeeds: skipped
        ScriptLine(["cat"]),  # stdin closed: reads nothing
        ScriptLine(["cat"], keep_stdin=True),  # the one reader gets the input
        ScriptLine(["sh", "-c", "exit 1"], ok_codes=(0, 1)),  # tolerated
        ScriptLine(["sh", "-c", "exit 2"], ok_codes=(0, 1)),  # stops the script
        ScriptLine(["printf", "not reached"]),
    ]
    script = build_script(lines, "M-2", stop_on_error=True)
    done = subprocess.run([shell, "-c", script], input=b"secret-input", capture_output=True)
    steps = split_steps(lines, "M-2", done.stdout, done.stderr)
    assert [s.exit_status for s in steps] == [0, 0, 0, 0, 1, 2, None]
    assert (steps[0].stdout, steps[0].skipped) == (b"ran", False)
    assert steps[1].skipped and b"never" not in done.stdout
    assert steps[2].stdout == b"" and steps[3].stdout == b"secret-input"
    assert done.returncode == 2


async def test_script_lines_over_ssh(conn: Connection) -> None:
    from workers.ssh import ScriptLine

    lines = [ScriptLine(["cat"]), ScriptLine(["cat"], keep_stdin=True), ScriptLine(["true"], unless=["true"])]
    result = await conn.run_script(lines, input=b"only-once")
    assert [s.stdout for s in result.steps[:2]] == [b"", b"only-once"]
    assert result.steps[2].skipped and result.ok
