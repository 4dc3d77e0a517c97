"""sudo over an exec channel: NOPASSWD (`sudo -n`) or a password sent on stdin (`sudo -S`), safely.

The command runs behind a small gate, `sh -c 'printf "%s\\n" "$1" >&2; shift; exec "$@"' sh READY CMD...`:
sudo runs the gate as root, the gate prints a random READY token on stderr and then becomes the command.
The transport writes the password only after sudo printed our random prompt, and writes the command's
own input only after READY arrived, so sudo can never read command input as a password attempt. A second
prompt means the password was refused: the channel is closed at once and `SudoAuthFailed` raised.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field

import asyncssh

from workers.ssh.errors import (
    SudoAuthFailed,
    SudoError,
    SudoNotAllowed,
    SudoRequiresPassword,
    TransportError,
)

# The gate script is a constant: the READY token and the command arrive as positional arguments.
_GATE = 'printf "%s\\n" "$1" >&2; shift; exec "$@"'

# sudo's own messages (sudo 1.9 `plugins/sudoers`, and macOS's sudo 1.9.x): what each refusal prints.
_NEEDS_PASSWORD = (b"a password is required",)
_NOT_ALLOWED = (b"is not allowed to execute", b"is not in the sudoers file", b"may not run sudo")
_BAD_PASSWORD = (b"incorrect password attempt", b"Sorry, try again")


@dataclass(frozen=True)
class SudoMode:
    """How to become root: `password=None` means NOPASSWD (`sudo -n`), else the password (bytes, never
    logged or shown in repr) is sent on stdin. `auth_timeout` bounds the authentication phase."""

    password: bytes | None = field(default=None, repr=False)
    auth_timeout: float = 20.0

    def __post_init__(self) -> None:
        if self.password is not None and (b"\n" in self.password or b"\r" in self.password):
            # sudo -S reads one line: a newline would end the password early and feed the rest to sudo.
            raise ValueError("sudo password must not contain a line break")


NOPASSWD = SudoMode()


@dataclass(frozen=True)
class SudoWrap:
    """One sudo invocation: the argv to run and the random prompt/ready tokens to watch for."""

    argv: list[str]
    prompt: bytes
    ready: bytes


def wrap(argv: list[str], mode: SudoMode) -> SudoWrap:
    """Wrap argv so it runs as root behind the READY gate (fresh random tokens per call)."""
    ready = f"MACFLEET-READY-{secrets.token_hex(12)}"
    prompt = f"[macfleet-sudo-{secrets.token_hex(12)}]"  # hex only: sudo expands %-escapes in prompts
    if mode.password is None:
        head = ["sudo", "-n", "--"]
    else:
        head = ["sudo", "-S", "-p", prompt, "--"]
    return SudoWrap(
        argv=[*head, "/bin/sh", "-c", _GATE, "sh", ready, *argv],
        prompt=prompt.encode(),
        ready=ready.encode() + b"\n",
    )


class SudoGate:
    """Drives the authentication phase of one sudo process, then steps aside."""

    def __init__(self, mode: SudoMode, tokens: SudoWrap, host: str, port: int) -> None:
        self.mode = mode
        self.tokens = tokens
        self.host = host
        self.port = port
        self.preamble = b""  # what sudo wrote before READY (lecture, "Sorry, try again"): not the command's

    async def authenticate(self, process: asyncssh.SSHClientProcess[bytes], stderr_sink: bytearray) -> None:
        """Return once READY arrived (any stderr after it goes to stderr_sink); raise a SudoError if sudo
        refuses, asks twice, or stays silent past `auth_timeout`. The caller closes the channel on raise."""
        try:
            async with asyncio.timeout(self.mode.auth_timeout):
                await self._wait_ready(process, stderr_sink)
        except TimeoutError:
            raise SudoAuthFailed(
                self.host,
                self.port,
                f"sudo did not accept the password within {self.mode.auth_timeout:g} s",
                "check the sudo password stored for this device, and that sudo is not waiting on a tty",
            ) from None

    async def _wait_ready(self, process: asyncssh.SSHClientProcess[bytes], stderr_sink: bytearray) -> None:
        buf = b""
        sent_password = False
        while True:
            chunk = await process.stderr.read(65536)
            if not chunk:
                self.preamble = buf
                status = await process.wait()
                raise self.refusal(buf, status.exit_status)
            buf += chunk
            at = buf.find(self.tokens.ready)
            if at >= 0:
                self.preamble = buf[:at]
                stderr_sink += buf[at + len(self.tokens.ready) :]
                return
            if self.tokens.prompt in buf:
                if self.mode.password is None or sent_password:
                    self.preamble = buf.replace(self.tokens.prompt, b"")
                    raise SudoAuthFailed(
                        self.host,
                        self.port,
                        "sudo refused the password",
                        "update the sudo password stored for this device (the command was not run)",
                    )
                process.stdin.write(self.mode.password + b"\n")
                await process.stdin.drain()
                sent_password = True
                buf = buf.replace(self.tokens.prompt, b"", 1)

    def refusal(self, stderr: bytes, exit_status: int | None) -> TransportError:
        """Classify sudo's failure from what it printed before the command could start."""
        text = stderr.replace(self.tokens.prompt, b"")
        first = text.strip().splitlines()[0].decode("utf-8", "replace")[:200] if text.strip() else ""
        if any(m in text for m in _NEEDS_PASSWORD):
            return SudoRequiresPassword(
                self.host,
                self.port,
                f"sudo needs a password for this account ({first})",
                "store the account's sudo password for this device, or grant NOPASSWD in sudoers",
            )
        if any(m in text for m in _NOT_ALLOWED):
            return SudoNotAllowed(
                self.host,
                self.port,
                f"the account may not use sudo ({first})",
                "use an administrator account, or add this account to sudoers on the Mac",
            )
        if any(m in text for m in _BAD_PASSWORD):
            return SudoAuthFailed(
                self.host,
                self.port,
                "sudo refused the password",
                "update the sudo password stored for this device (the command was not run)",
            )
        return SudoError(
            self.host,
            self.port,
            f"sudo failed before running the command (exit {exit_status}): {first or 'no message'}",
            "check that sudo exists and works for this account on the Mac",
        )
