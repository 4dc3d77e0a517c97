"""One simulated Mac's SSH server: a real asyncssh server on 127.0.0.1 with its own host key.

What a client sees:
- Auth by public key (the fleet's client key plus the spec's `authorized_keys`) for the spec's user only,
  and by password when the spec sets one. Any other user name fails auth, as sshd does.
- Exec requests run the command text through the macsim shell (`macsim.shell.interp.run_exec`) with the
  channel's stdin streamed; the full command text and exit status go to the host's command log (stdin is
  never logged). If the client closes the channel before the command ends, the command is cancelled and
  logged with status 129 (SIGHUP, what sshd's session teardown delivers).
- A shell request without a command (`ssh host` with no command, `ssh host < script`): the server reads
  stdin to EOF and runs it as one script, like a login shell fed a script; it logs a placeholder, not the
  text, because it arrived on stdin. PTYs are refused (OpenSSH then prints "PTY allocation request failed").
- The `sftp` subsystem (see `macsim.sftp`); SCP, forwarding and agent forwarding are off.

Per-connection cost is kept low for 1000 hosts in one process: one options object per host (built once,
rebuilt on host-key rotation), no compression (zlib state is the largest per-connection allocation), no
GSSAPI probing, and connections are asyncio protocols on a listening socket we own (so faults can act
before the SSH banner is sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import socket
import struct
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import asyncssh

from macsim.faults import ConnState, HangProtocol, apply_latency
from macsim.mac import VirtualMac
from macsim.sftp import MacSFTPServer
from macsim.shell.interp import run_exec
from macsim.shell.proc import Output, Stdin
from macsim.spec import HostSpec

log = logging.getLogger(__name__)

ExecHandler = Callable[[VirtualMac, str, Stdin, Output, Output], Awaitable[int]]
LISTEN_ADDRESS = "127.0.0.1"
HANGUP_STATUS = 129  # 128 + SIGHUP: what a command killed by the session closing exits with
SHELL_LOG_TEXT = "<login shell: commands read from stdin>"


class MacSource(Protocol):
    """Where the server gets its host's VirtualMac (created lazily by the fleet)."""

    @property
    def mac(self) -> VirtualMac: ...

    async def ready(self) -> VirtualMac:
        """The Mac, after any pending boot work finished."""
        ...


def load_or_create_host_key(path: Path) -> asyncssh.SSHKey:
    """The ed25519 host key stored at `path`, generated (0600) when missing so it survives restarts."""
    if path.exists():
        return asyncssh.read_private_key(str(path))
    return write_new_host_key(path)


def write_new_host_key(path: Path) -> asyncssh.SSHKey:
    """Generate a fresh ed25519 key, replace the file at `path` with it (0600), and return it."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    write_private_key(path, key)
    return key


def write_private_key(path: Path, key: asyncssh.SSHKey) -> None:
    """Write an OpenSSH private key file readable only by its owner (ssh refuses looser keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.export_private_key("openssh"))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _default_exec_handler() -> ExecHandler:
    handler: ExecHandler = run_exec
    return handler


class _Writer:
    """Output adapter: tools may write str or bytes; writes after the channel closed are dropped."""

    def __init__(self, writer: asyncssh.SSHWriter[bytes]) -> None:
        self._w = writer

    def write(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not data:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionError, asyncssh.Error):
            self._w.write(data)


class _EmptyStdin:
    async def read(self, n: int = -1) -> bytes:
        return b""

    async def readline(self) -> bytes:
        return b""


class _Session(asyncssh.SSHServer):
    """Auth decisions for one connection."""

    def __init__(self, host: HostServer) -> None:
        self._host = host

    def begin_auth(self, username: str) -> bool:
        return True  # every user must authenticate; only the spec's user can succeed

    def password_auth_supported(self) -> bool:
        return self._host.spec.password is not None

    def validate_password(self, username: str, password: str) -> bool:
        expected = self._host.spec.password
        if expected is None or username != self._host.spec.user:
            return False
        return hmac.compare_digest(password.encode(), expected.encode())

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == self._host.spec.user and key.public_data in self._host.authorized_key_blobs


# SSH_MSG_IGNORE (RFC 4253 11.2): asyncssh's send_packet puts one before every packet once the transport is
# encrypted. OpenSSH's sshd sends none (packet.c ssh_packet_send_ignore's callers are the client's
# keystroke-timing obfuscation in clientloop.c), and a Mac runs sshd.
_MSG_IGNORE = 2


class SshdLikeConnection(asyncssh.SSHServerConnection):
    """asyncssh's server connection without the MSG_IGNORE before every packet, as sshd sends them: a client
    (our controller) then decrypts and dispatches the packets a real Mac would send it, not twice as many."""

    def send_packet(self, pkttype: int, *args: bytes, handler: Any = None) -> None:
        if pkttype != _MSG_IGNORE:
            super().send_packet(pkttype, *args, handler=handler)


class HostServer:
    """The listener, connections and SSH options of one simulated Mac."""

    def __init__(
        self,
        spec: HostSpec,
        host_key_path: Path,
        authorized_keys: list[asyncssh.SSHKey],
        source: MacSource,
        exec_handler: ExecHandler | None = None,
    ) -> None:
        self.spec = spec
        self.host_key_path = host_key_path
        self.host_key = load_or_create_host_key(host_key_path)
        self.authorized_key_blobs = {k.public_data for k in authorized_keys}
        self.source = source
        self._exec_handler = exec_handler
        self.port: int = spec.port or 0
        self._server: asyncio.AbstractServer | None = None
        self._opening: asyncio.Task[asyncio.AbstractServer] | None = None
        self._options: asyncssh.SSHServerConnectionOptions | None = None
        self._conns: weakref.WeakSet[Any] = weakref.WeakSet()
        self._conn_state: weakref.WeakKeyDictionary[Any, ConnState] = weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- identity ---------------------------------------------------------------------------------
    @property
    def host_key_public(self) -> str:
        """The host's public key as an OpenSSH line (`ssh-ed25519 AAAA...`)."""
        return self.host_key.export_public_key("openssh").decode().strip()

    def known_hosts_line(self) -> str:
        """A known_hosts line for this server as OpenSSH writes it for a non-22 port."""
        return f"[{LISTEN_ADDRESS}]:{self.port} {self.host_key_public}"

    def rotate_host_key(self) -> str:
        """Replace the host key (on disk too); new connections present the new key. Returns its line."""
        self.host_key = write_new_host_key(self.host_key_path)
        self._options = None
        return self.host_key_public

    # ---- listener ---------------------------------------------------------------------------------
    @property
    def listening(self) -> bool:
        return self._server is not None or self._opening is not None

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((LISTEN_ADDRESS, self.port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        return sock

    async def start(self) -> None:
        """Listen (unless the host refuses connections). Raises OSError if the port is taken."""
        if self.spec.faults.refuse_connections:
            if not self.port:
                # Reserve a port number now so the host has a stable address, then refuse on it.
                self._bind().close()
            return
        self.open_listener()
        await self.wait_listening()

    def open_listener(self) -> None:
        """Start accepting on the host's port (synchronously bound; serving starts on the loop)."""
        if self.listening:
            return
        sock = self._bind()
        loop = asyncio.get_running_loop()
        self._opening = loop.create_task(loop.create_server(self._protocol_factory, sock=sock))

    async def wait_listening(self) -> None:
        if self._opening is not None:
            task = self._opening
            try:
                self._server = await task
            finally:
                if self._opening is task:
                    self._opening = None

    def close_listener(self) -> None:
        """Stop accepting: the port refuses TCP connections. Open connections are not touched."""
        if self._opening is not None:
            task = self._opening
            self._opening = None

            def _close_when_open(t: asyncio.Task[asyncio.AbstractServer]) -> None:
                if not t.cancelled() and t.exception() is None:
                    t.result().close()

            task.add_done_callback(_close_when_open)
        if self._server is not None:
            self._server.close()
            self._server = None

    def reset_connections(self) -> int:
        """Reset (RST) every open connection of this host. Returns how many were reset."""
        conns = list(self._conns)
        for c in conns:
            if isinstance(c, HangProtocol):
                c.abort()
            else:
                reset_connection(c)
        return len(conns)

    async def stop(self) -> None:
        """Close the listener, reset connections, and cancel running commands."""
        self.close_listener()
        self.reset_connections()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- connections ------------------------------------------------------------------------------
    def _protocol_factory(self) -> asyncio.BaseProtocol:
        if self.spec.faults.hang_after_accept:
            hang = HangProtocol()
            self._conns.add(hang)
            return hang
        loop = asyncio.get_running_loop()
        conn = SshdLikeConnection(loop, self.options())
        self._conns.add(conn)
        return conn

    def options(self) -> asyncssh.SSHServerConnectionOptions:
        """The host's server options, built once (they carry the host key and the factories)."""
        if self._options is None:
            self._options = asyncssh.SSHServerConnectionOptions(
                server_host_keys=[self.host_key],
                server_factory=lambda: _Session(self),
                process_factory=self._handle_process,
                sftp_factory=self._sftp_factory,
                encoding=None,
                allow_pty=False,
                allow_scp=False,
                agent_forwarding=False,
                x11_forwarding=False,
                gss_host=None,
                compression_algs=["none"],
                rdns_lookup=False,
                login_timeout=30,
                keepalive_interval=0,
            )
        return self._options

    def conn_state(self, conn: Any) -> ConnState:
        """Fault accounting for one SSH connection (created on first use)."""
        state = self._conn_state.get(conn)
        if state is None:
            state = self._conn_state[conn] = ConnState()
        return state

    def _sftp_factory(self, chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
        conn = chan.get_connection()
        return MacSFTPServer(
            chan,
            self.source.mac,
            self.spec,
            self.conn_state(conn),
            lambda: reset_connection(conn),
        )

    async def _handle_process(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._run_process(process)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _run_process(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        mac = await self.source.ready()
        user = process.get_extra_info("username") or self.spec.user
        await apply_latency(self.spec.faults)
        command = process.command
        stdin: Stdin = process.stdin
        if command is None:
            command = (await process.stdin.read()).decode("utf-8", "replace")
            stdin = _EmptyStdin()
            rec = mac.log_start(user, SHELL_LOG_TEXT)
        else:
            rec = mac.log_start(user, command)
        handler = self._exec_handler or _default_exec_handler()
        out, err = _Writer(process.stdout), _Writer(process.stderr)
        run = asyncio.ensure_future(handler(mac, command, stdin, out, err))
        closed = asyncio.ensure_future(process.channel.wait_closed())
        try:
            await asyncio.wait({run, closed}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            run.cancel()
            closed.cancel()
            mac.log_end(rec, HANGUP_STATUS)
            raise
        if not run.done():
            # The client went away (or the connection was reset): the command gets a hangup.
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run
            mac.log_end(rec, HANGUP_STATUS)
            return
        closed.cancel()
        try:
            status = run.result()
        except Exception:
            log.exception("macsim %s: command failed inside the simulator", self.spec.name)
            err.write("macsim: internal error running the command\n")
            status = 70  # EX_SOFTWARE
        mac.log_end(rec, status)
        with contextlib.suppress(BrokenPipeError, ConnectionError, asyncssh.Error):
            process.exit(status & 0xFF)


def reset_connection(conn: Any) -> None:
    """Reset an asyncssh connection's TCP socket (RST), as a dropped link or a reboot looks."""
    sock = conn.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.abort()
