"""Opening one SSH connection to a Mac and the `Connection` object the workers use for all its steps.

asyncssh is configured explicitly: `config=None` so `~/.ssh/config` cannot switch host key checking or
algorithms behind our back, host keys decided by `HostKeyPolicy`, AES-128-GCM preferred (measured ~1.6x
ChaCha20's throughput here), keepalives so a silent peer fails in bounded time, connect and login timeouts.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncssh

from workers.ssh.errors import AuthFailed, ConnectionLost, Unreachable
from workers.ssh.exec import (
    ExecResult,
    ScriptLine,
    ScriptResult,
    build_script,
    execute,
    new_marker,
    render,
    split_steps,
)
from workers.ssh.filecache import FileVersionCache
from workers.ssh.hostkeys import HostKeyCheck, HostKeyPolicy, fingerprint, key_line
from workers.ssh.sudo import SudoGate, SudoMode, wrap

_PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)
_SUPPORTED = {alg.decode() for alg in asyncssh.encryption.get_encryption_algs()}
ENCRYPTION_ALGS = [alg for alg in _PREFERRED_CIPHERS if alg in _SUPPORTED]


@dataclass(frozen=True)
class SshTarget:
    """Where to connect: host name or address, port, and the account to log in as."""

    host: str
    username: str
    port: int = 22

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("SSH target host is empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"SSH port {self.port} is out of range 1-65535")
        if not self.username:
            raise ValueError(f"SSH target {self.host}:{self.port} has no username")

    @property
    def address(self) -> str:
        """`host:port`."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class SshAuth:
    """Credentials: private key files, the ssh-agent, and/or a password (bytes, never shown in repr).

    Only what is given here is tried: no default keys from ~/.ssh, no agent unless `agent=True`."""

    key_files: tuple[Path, ...] = ()
    key_passphrase: bytes | None = field(default=None, repr=False)
    agent: bool = False
    agent_path: str | None = None  # default: $SSH_AUTH_SOCK
    password: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.key_files and not self.agent and self.password is None:
            raise ValueError("no SSH authentication method: give key files, agent=True, or a password")


@dataclass(frozen=True)
class Timeouts:
    """Bounds, in seconds. A silent peer is dropped after about interval x count_max seconds."""

    connect: float = 10.0
    login: float = 30.0
    command: float = 300.0
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3


class _Client(asyncssh.SSHClient):
    """Routes asyncssh's "is this host key acceptable?" question to the connection's HostKeyCheck."""

    def __init__(self, check: HostKeyCheck) -> None:
        self._check = check

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        return self._check.validate(key)


class Connection:
    """One live SSH connection to one Mac, reused for all of its steps.

    `host_key` is the key the server proved it holds (`algorithm base64`); `host_key_is_new` is True when
    it was accepted by trust on first use, so the caller must pin it."""

    def __init__(
        self,
        conn: asyncssh.SSHClientConnection,
        target: SshTarget,
        timeouts: Timeouts,
        host_key: str,
        host_key_fingerprint: str,
        host_key_is_new: bool,
    ) -> None:
        self._conn = conn
        self.target = target
        self.timeouts = timeouts
        self.host_key = host_key
        self.host_key_fingerprint = host_key_fingerprint
        self.host_key_is_new = host_key_is_new
        self.cipher = str(conn.get_extra_info("send_cipher") or "")
        self.round_trips = 0  # execs issued: the benchmark's "round trips per device"

    @property
    def ssh(self) -> asyncssh.SSHClientConnection:
        """The underlying asyncssh connection (for SFTP and tests)."""
        return self._conn

    @property
    def is_closed(self) -> bool:
        """True once the connection was closed by either side."""
        return self._conn.is_closed()

    async def run(
        self,
        argv: list[str],
        *,
        sudo: SudoMode | None = None,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run argv (as root through sudo when `sudo` is given), feeding `input` on stdin then EOF.

        A non-zero exit is returned, not raised. Raises CommandTimeout (default limit `timeouts.command`),
        ConnectionLost, SudoRequiresPassword/SudoNotAllowed/SudoAuthFailed (the command did not run), or
        ValueError for an argv that cannot be rendered."""
        render(argv)
        limit = self.timeouts.command if timeout is None else timeout
        self.round_trips += 1
        if sudo is None:
            return await execute(
                self._conn, self.target.host, self.target.port, argv, render(argv), input=input, timeout=limit
            )
        tokens = wrap(argv, sudo)
        gate = SudoGate(sudo, tokens, self.target.host, self.target.port)
        return await execute(
            self._conn,
            self.target.host,
            self.target.port,
            argv,
            render(tokens.argv),
            input=input,
            timeout=limit,
            gate=gate,
        )

    async def run_script(
        self,
        lines: Sequence[list[str] | ScriptLine],
        *,
        sudo: SudoMode | None = None,
        input: bytes | None = None,
        timeout: float | None = None,
        stop_on_error: bool = True,
    ) -> ScriptResult:
        """Run several argv lines in ONE exec and return each step's own outcome and output.

        With stop_on_error (default) the steps after the first failing one do not run (`ran` is False).
        With sudo, the whole script runs as root under one sudo authentication (`/bin/sh -c SCRIPT`).
        All steps share `input` (stdin); a step that must not read it should redirect it itself.
        Raises as `run`."""
        marker = new_marker()
        script = build_script(lines, marker, stop_on_error=stop_on_error)
        limit = self.timeouts.command if timeout is None else timeout
        self.round_trips += 1
        shown = ["sh", "-c", f"<script of {len(lines)} steps>"]
        if sudo is None:
            result = await execute(
                self._conn, self.target.host, self.target.port, shown, script, input=input, timeout=limit
            )
        else:
            tokens = wrap(["/bin/sh", "-c", script], sudo)
            gate = SudoGate(sudo, tokens, self.target.host, self.target.port)
            result = await execute(
                self._conn,
                self.target.host,
                self.target.port,
                shown,
                render(tokens.argv),
                input=input,
                timeout=limit,
                gate=gate,
            )
        steps = split_steps(lines, marker, result.stdout, result.stderr)
        return ScriptResult(steps=steps, exit_status=result.exit_status, duration=result.duration)

    async def close(self) -> None:
        """Close the connection and wait until it is closed (idempotent)."""
        self._conn.close()
        try:
            await asyncio.wait_for(self._conn.wait_closed(), timeout=5)
        except (TimeoutError, asyncssh.Error, OSError):
            self._conn.abort()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _auth_options(target: SshTarget, auth: SshAuth, keys: list[asyncssh.SSHKeyPair]) -> dict[str, Any]:
    options: dict[str, Any] = {"agent_path": None, "client_keys": keys or None, "password": None}
    if auth.password is not None:
        try:
            options["password"] = auth.password.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthFailed(
                target.host, target.port, "the SSH password is not valid UTF-8", "re-store the password"
            ) from None
    methods = []
    if keys:
        methods.append("publickey")
    if auth.password is not None:
        methods += ["keyboard-interactive", "password"]
    options["preferred_auth"] = methods
    return options


_KEYPAIRS: FileVersionCache[list[asyncssh.SSHKeyPair]] = FileVersionCache(limit=16)


def _read_keypairs(path: Path) -> list[asyncssh.SSHKeyPair]:
    return list(asyncssh.load_keypairs([str(path)]))


async def _load_keys(
    target: SshTarget, auth: SshAuth
) -> tuple[list[asyncssh.SSHKeyPair], asyncssh.SSHAgentClient | None]:
    """The key pairs to offer, and the agent client that signs for agent keys (close it after login)."""
    keys: list[asyncssh.SSHKeyPair] = []
    passphrase = auth.key_passphrase.decode("utf-8") if auth.key_passphrase is not None else None
    for path in auth.key_files:
        try:
            if passphrase is None:  # read and parsed once per version of the file, not once per Mac
                keys.extend(_KEYPAIRS.get(Path(path), _read_keypairs))
            else:
                keys.extend(asyncssh.load_keypairs([str(path)], passphrase))
        except OSError as exc:
            raise AuthFailed(
                target.host,
                target.port,
                f"cannot read private key {path}: {exc.strerror or exc}",
                "check the key file path and its permissions",
            ) from None
        except (asyncssh.KeyImportError, ValueError):
            raise AuthFailed(
                target.host,
                target.port,
                f"cannot load private key {path} (wrong passphrase, or not a private key)",
                "check the key file and its passphrase",
            ) from None
    if auth.agent:
        sock = auth.agent_path
        try:
            agent = await asyncssh.connect_agent(sock) if sock else await asyncssh.connect_agent()
        except (OSError, ValueError, asyncssh.Error) as exc:
            raise AuthFailed(
                target.host,
                target.port,
                f"cannot reach the ssh-agent: {exc}",
                "start ssh-agent, set SSH_AUTH_SOCK",
            ) from None
        if agent is None:
            raise AuthFailed(
                target.host,
                target.port,
                "no ssh-agent (SSH_AUTH_SOCK unset)",
                "start ssh-agent, set SSH_AUTH_SOCK",
            )
        try:
            keys.extend(await agent.get_keys())
        except (OSError, asyncssh.Error) as exc:
            agent.close()
            raise AuthFailed(
                target.host, target.port, f"the ssh-agent did not list its keys: {exc}", "check ssh-agent"
            ) from None
        return keys, agent
    return keys, None


def _unreachable(target: SshTarget, problem: str) -> Unreachable:
    return Unreachable(
        target.host,
        target.port,
        problem,
        "check that the Mac is on, that Remote Login is enabled (System Settings > Sharing), and the "
        "address/port in the inventory",
    )


async def connect(
    target: SshTarget,
    policy: HostKeyPolicy,
    auth: SshAuth,
    timeouts: Timeouts | None = None,
) -> Connection:
    """Open, authenticate and host-key-check one connection.

    Raises Unreachable (refused, timed out, name does not resolve), HostKeyMismatch / HostKeyUnknown
    (before any command could run), AuthFailed, or ConnectionLost (dropped during the handshake or the
    login timeout expired). ValueError when the policy's known_hosts file cannot be read."""
    timeouts = timeouts or Timeouts()
    check = HostKeyCheck(policy, target.host, target.port)
    keys, agent = await _load_keys(target, auth)
    try:
        return await _open(target, auth, timeouts, check, keys)
    finally:
        if agent is not None:
            agent.close()  # agent keys sign only during login


async def _open(
    target: SshTarget,
    auth: SshAuth,
    timeouts: Timeouts,
    check: HostKeyCheck,
    keys: list[asyncssh.SSHKeyPair],
) -> Connection:
    started = time.monotonic()
    try:
        conn = await asyncssh.connect(
            target.host,
            target.port,
            username=target.username,
            config=None,
            known_hosts=check.trusted,
            client_factory=lambda: _Client(check),
            x509_trusted_certs=None,
            encryption_algs=ENCRYPTION_ALGS,
            keepalive_interval=timeouts.keepalive_interval,
            keepalive_count_max=timeouts.keepalive_count_max,
            connect_timeout=timeouts.connect,
            login_timeout=timeouts.login,
            **_auth_options(target, auth, keys),
        )
    except asyncssh.HostKeyNotVerifiable:
        raise check.refusal() from None
    except asyncssh.PermissionDenied:
        raise AuthFailed(
            target.host,
            target.port,
            f"the server refused authentication as {target.username!r}",
            "check the username, and that the key is in the account's authorized_keys (or the password)",
        ) from None
    except asyncssh.ConnectionLost as exc:
        raise ConnectionLost(
            target.host,
            target.port,
            f"connection dropped during login: {exc.reason}",
            "retry; check sshd logs",
        ) from None
    except asyncssh.DisconnectError as exc:
        raise ConnectionLost(
            target.host,
            target.port,
            f"the server disconnected: {exc.reason}",
            "check the Mac's sshd settings",
        ) from None
    except socket.gaierror as exc:
        raise _unreachable(target, f"name does not resolve ({exc.strerror})") from None
    except ConnectionRefusedError:
        raise _unreachable(target, "connection refused (no SSH server listening)") from None
    except TimeoutError:
        waited = time.monotonic() - started
        raise _unreachable(target, f"no answer within {waited:.1f} s") from None
    except OSError as exc:
        raise _unreachable(target, f"cannot connect: {exc.strerror or exc}") from None
    server_key = conn.get_server_host_key()
    if server_key is None:  # pragma: no cover - asyncssh always has one after a key exchange
        conn.abort()
        raise ConnectionLost(target.host, target.port, "no host key after key exchange", "retry")
    return Connection(
        conn,
        target,
        timeouts,
        host_key=key_line(server_key),
        host_key_fingerprint=fingerprint(server_key),
        host_key_is_new=check.accepted_first_use,
    )
