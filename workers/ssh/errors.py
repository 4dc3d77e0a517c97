"""Typed errors of the SSH transport.

Every error names the device (host:port) and carries a hint a person can act on. None of them ever holds a
secret: passwords, key material and command input are never put into a message.
"""

from __future__ import annotations


class TransportError(Exception):
    """Base of every transport error: `host`, `port` and a `hint` saying what to do next."""

    def __init__(self, host: str, port: int, problem: str, hint: str) -> None:
        self.host = host
        self.port = port
        self.problem = problem
        self.hint = hint
        super().__init__(f"{host}:{port}: {problem} — {hint}")

    @property
    def address(self) -> str:
        """`host:port` of the device the error is about."""
        return f"{self.host}:{self.port}"


class Unreachable(TransportError):
    """No SSH session could be opened: connection refused, timed out, or the name does not resolve."""


class AuthFailed(TransportError):
    """The server refused every authentication method we offered."""


class HostKeyError(TransportError):
    """Base of the host key errors; `presented` is the key the server showed (an OpenSSH public key line)."""

    def __init__(self, host: str, port: int, problem: str, hint: str, presented: str | None) -> None:
        self.presented = presented
        super().__init__(host, port, problem, hint)


class HostKeyMismatch(HostKeyError):
    """The server presented a key that differs from the pinned or known one: nothing was run."""

    def __init__(
        self, host: str, port: int, expected: list[str], presented_fingerprint: str, presented: str | None
    ) -> None:
        self.expected = expected
        self.presented_fingerprint = presented_fingerprint
        problem = (
            f"host key changed: expected {', '.join(expected)}, server presented {presented_fingerprint}"
        )
        hint = (
            "the Mac was reinstalled or this is not the Mac you think it is; verify the new key out of band "
            "(e.g. `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the Mac's console), then replace "
            "the pinned key"
        )
        super().__init__(host, port, problem, hint, presented)


class HostKeyUnknown(HostKeyError):
    """No key is pinned or known for the host and trust on first use was not allowed."""

    def __init__(self, host: str, port: int, presented_fingerprint: str, presented: str | None) -> None:
        self.presented_fingerprint = presented_fingerprint
        problem = f"no known host key (server presented {presented_fingerprint})"
        hint = (
            "pin the Mac's host key (add it to the known_hosts file or the database), or run once with "
            "--trust-on-first-use to pin the key presented now"
        )
        super().__init__(host, port, problem, hint, presented)


class ConnectionLost(TransportError):
    """An established connection dropped (peer closed, keepalives unanswered, login timed out)."""


class CommandTimeout(TransportError):
    """A command did not finish in its time limit; its channel was signalled and closed.

    `stdout`/`stderr` hold what had arrived before the limit (the caller redacts before recording)."""

    def __init__(
        self, host: str, port: int, argv: list[str], timeout: float, stdout: bytes, stderr: bytes
    ) -> None:
        self.argv = argv
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(
            host,
            port,
            f"command {argv[0] if argv else '?'!r} did not finish within {timeout:g} s",
            "the command hangs or the Mac is overloaded; raise the step timeout only if it is known slow",
        )


class SudoError(TransportError):
    """Base of the sudo errors: sudo itself refused, the command never ran."""


class SudoRequiresPassword(SudoError):
    """`sudo -n` was refused because the account needs a password for sudo."""


class SudoNotAllowed(SudoError):
    """The account may not run the command as root at all (not in sudoers)."""


class SudoAuthFailed(SudoError):
    """The sudo password was refused (or sudo kept asking); the command's input was never sent."""


class UploadError(TransportError):
    """An upload failed for a reason other than a lost connection (e.g. the hash differs after writing)."""
