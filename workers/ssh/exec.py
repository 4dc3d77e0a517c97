"""Running argv lists on the Mac: rendering (the ONLY place shell text is made), one command, or a script.

Rendering uses `shlex.join`, whose single-quote quoting means the same to zsh (macOS's login shell, which
sshd uses to run the command) and to POSIX sh. A script is several rendered argv lines in one exec; after
each step a marker line carrying the step's exit status is printed to stdout and stderr, so each step's
output and outcome can be separated again (`split_steps`).
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncssh

from workers.ssh.errors import CommandTimeout, ConnectionLost
from workers.ssh.sudo import SudoGate

STDIN_CHUNK = 256 * 1024  # measured: 256 KiB writes keep the channel window full on loopback
_READ_CHUNK = 256 * 1024
_RC_VAR = "__macfleet_rc"


def render(argv: list[str]) -> str:
    """The shell text for argv: each word single-quoted as needed by `shlex.join`.

    Raises ValueError for an empty argv, a non-str word, or a NUL byte (no shell can pass one on)."""
    if not argv:
        raise ValueError("empty argv: nothing to run")
    for word in argv:
        if not isinstance(word, str):
            raise ValueError(f"argv words must be str, got {type(word).__name__}")
        if "\x00" in word:
            raise ValueError("argv word contains a NUL byte, which no shell can pass on")
    return shlex.join(argv)


@dataclass(frozen=True)
class ExecResult:
    """What one exec produced. `exit_status` is None when the command died by a signal (`exit_signal`)."""

    argv: list[str]
    exit_status: int | None
    stdout: bytes
    stderr: bytes
    duration: float
    exit_signal: str | None = None

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.exit_status == 0


@dataclass(frozen=True)
class StepOutcome:
    """One step of a script: `exit_status` is None when the step never finished (an earlier step failed
    with stop_on_error, or the script was cut short)."""

    argv: list[str]
    exit_status: int | None
    stdout: bytes
    stderr: bytes
    skipped: bool = False  # an `unless` probe succeeded, so the command itself did not run

    @property
    def ran(self) -> bool:
        """True when the step ran to its end (whatever its status)."""
        return self.exit_status is not None

    @property
    def ok(self) -> bool:
        """True when the step ran and exited 0."""
        return self.exit_status == 0


@dataclass(frozen=True)
class ScriptResult:
    """A script's steps in order, plus the exec's own status and wall time."""

    steps: list[StepOutcome]
    exit_status: int | None
    duration: float

    @property
    def ok(self) -> bool:
        """True when every step ran and exited 0."""
        return all(step.ok for step in self.steps)


def new_marker() -> str:
    """A random marker no command output will contain by chance."""
    return f"MACFLEET-STEP-{secrets.token_hex(12)}"


@dataclass(frozen=True)
class ScriptLine:
    """One line of a script with its options.

    keep_stdin: the line reads the script's stdin (every other line gets `</dev/null`, so it cannot eat
    input meant for another). unless: a probe argv run first (stdin and output discarded); when it exits 0
    the line is skipped and its step reports `skipped`. ok_codes: statuses that do not stop the script."""

    argv: list[str]
    keep_stdin: bool = False
    unless: list[str] | None = None
    ok_codes: tuple[int, ...] = (0,)


def _as_line(item: list[str] | ScriptLine) -> ScriptLine:
    return item if isinstance(item, ScriptLine) else ScriptLine(list(item), keep_stdin=True)


def skip_token(marker: str) -> str:
    return f"{marker}-SKIP"


def _line_text(line: ScriptLine, marker: str) -> str:
    body = render(line.argv) + ("" if line.keep_stdin else " </dev/null")
    if line.unless is None:
        return body
    probe = render(line.unless) + " >/dev/null 2>&1 </dev/null"
    skip = shlex.join(["printf", "%s\\n", skip_token(marker)])
    return f"if {probe}; then {skip}; else {body}; fi"


def build_script(
    lines: Sequence[list[str] | ScriptLine], marker: str, *, stop_on_error: bool = True
) -> str:
    """Shell text running each line in turn; after each, `printf '\\n%s %s %s\\n' MARKER INDEX RC` to
    stdout and stderr. With stop_on_error, the script exits with the first status not in the line's
    ok_codes. Plain argv lines keep the script's stdin (the historical behaviour); ScriptLines close it
    unless `keep_stdin`.

    The leading newline of the marker line keeps a step's output that lacks a final newline separable."""
    if not lines:
        raise ValueError("empty script: no argv lines")
    if not marker.replace("-", "").isalnum():
        raise ValueError("marker must be letters, digits and dashes")
    out: list[str] = []
    for index, item in enumerate(lines):
        line = _as_line(item)
        out.append(_line_text(line, marker))
        out.append(f"{_RC_VAR}=$?")
        mark = shlex.join(["printf", "\\n%s %s %s\\n", marker, str(index)]) + f' "${_RC_VAR}"'
        out.append(mark)
        out.append(mark + " >&2")
        if stop_on_error:
            tests = " || ".join(f'[ "${_RC_VAR}" -eq {code} ]' for code in line.ok_codes)
            out.append(f'{tests} || exit "${_RC_VAR}"')
    return "\n".join(out) + "\n"


def _split_stream(data: bytes, marker: str, count: int) -> tuple[bytes, list[tuple[bytes, int | None]]]:
    """Cut one stream at the marker lines: (what follows the last marker, [(output, status) per step]).

    Anything a shell start-up file prints cannot be told apart from step 0's output, so it stays there."""
    parts: list[tuple[bytes, int | None]] = []
    pos = 0
    for index in range(count):
        head = f"\n{marker} {index} ".encode()
        at = data.find(head, pos)
        if at < 0:
            parts.append((data[pos:], None))
            pos = len(data)
            parts.extend((b"", None) for _ in range(index + 1, count))
            break
        end = data.find(b"\n", at + len(head))
        if end < 0:
            parts.append((data[pos:at], None))
            parts.extend((b"", None) for _ in range(index + 1, count))
            pos = len(data)
            break
        status_text = data[at + len(head) : end]
        status = int(status_text) if status_text.isdigit() else None
        parts.append((data[pos:at], status))
        pos = end + 1
    return data[pos:], parts


def split_steps(
    lines: Sequence[list[str] | ScriptLine], marker: str, stdout: bytes, stderr: bytes
) -> list[StepOutcome]:
    """Separate a script's output into one `StepOutcome` per line (inverse of `build_script`)."""
    _, outs = _split_stream(stdout, marker, len(lines))
    _, errs = _split_stream(stderr, marker, len(lines))
    token = (skip_token(marker) + "\n").encode()
    steps = []
    for item, (out, status), (err, _) in zip(lines, outs, errs, strict=True):
        line = _as_line(item)
        skipped = isinstance(item, ScriptLine) and line.unless is not None and out == token
        steps.append(StepOutcome(argv=line.argv, exit_status=status, stdout=out, stderr=err, skipped=skipped))
    return steps


async def _pump(stream: asyncssh.SSHReader[bytes], sink: bytearray) -> None:
    while True:
        chunk = await stream.read(_READ_CHUNK)
        if not chunk:
            return
        sink += chunk


async def _feed(process: asyncssh.SSHClientProcess[bytes], data: bytes | None) -> None:
    try:
        if data:
            view = memoryview(data)
            for start in range(0, len(view), STDIN_CHUNK):
                process.stdin.write(bytes(view[start : start + STDIN_CHUNK]))
                await process.stdin.drain()
        process.stdin.write_eof()
    except (BrokenPipeError, ConnectionResetError, asyncssh.ChannelOpenError, asyncssh.DisconnectError):
        pass  # the command exited without reading all its input: its exit status tells the story


async def _kill(process: asyncssh.SSHClientProcess[bytes], grace: float = 0.5) -> None:
    """Stop the remote command: TERM (sudo relays it to a root command), KILL after `grace`, then close.

    OpenSSH (7.9+) honours "signal" requests for sessions of non-root accounts — the macOS case; for a
    root login it refuses them (the session runs in the privsep monitor), and closing the channel is all
    that is left."""
    for name in ("TERM", "KILL"):
        try:
            process.send_signal(name)
        except (OSError, asyncssh.Error, ValueError):
            break
        try:
            await asyncio.wait_for(process.wait_closed(), timeout=grace)
            break
        except TimeoutError:
            continue
    process.close()


async def execute(
    conn: asyncssh.SSHClientConnection,
    host: str,
    port: int,
    argv: list[str],
    command: str,
    *,
    input: bytes | None,
    timeout: float,
    gate: SudoGate | None = None,
) -> ExecResult:
    """Run shell text `command` (rendered from `argv`, which is what the result reports) on one channel.

    The input is written only after the gate (if any) let the command start; stdin is then closed.
    Raises CommandTimeout (the channel is signalled and closed), ConnectionLost, or the gate's SudoError."""
    started = time.monotonic()
    stdout = bytearray()
    stderr = bytearray()
    process: asyncssh.SSHClientProcess[bytes] | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        async with asyncio.timeout(timeout):
            process = await conn.create_process(command, encoding=None, term_type=None)
            tasks.append(asyncio.create_task(_pump(process.stdout, stdout)))
            if gate is not None:
                await gate.authenticate(process, stderr)
            tasks.append(asyncio.create_task(_pump(process.stderr, stderr)))
            tasks.append(asyncio.create_task(_feed(process, input)))
            await asyncio.gather(*tasks)
            completed = await process.wait()
    except TimeoutError:
        if process is not None:
            await _kill(process)
        raise CommandTimeout(host, port, argv, timeout, bytes(stdout), bytes(stderr)) from None
    except (asyncssh.DisconnectError, asyncssh.ChannelOpenError, BrokenPipeError, ConnectionError) as exc:
        raise ConnectionLost(
            host, port, f"connection lost while running {argv[0]!r}: {exc}", "reconnect and retry the step"
        ) from None
    except BaseException:
        if process is not None:
            process.close()
        raise
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
    return ExecResult(
        argv=argv,
        exit_status=completed.exit_status if completed.exit_signal is None else None,
        stdout=bytes(stdout),
        stderr=bytes(stderr),
        duration=time.monotonic() - started,
        exit_signal=completed.exit_signal[0] if completed.exit_signal else None,
    )
