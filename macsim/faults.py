"""How the SSH server applies a host's network fault knobs (`HostSpec.faults`).

The knobs are read at the moment they apply (accept, exec, each SFTP request), so a change made through
`Fleet.set_faults` takes effect on the next connection or request without a restart.

Counting rules (documented here because tests depend on them):
- `drop_after_sftp_bytes` counts SFTP write payload per SSH connection (all SFTP sessions on it share the
  count). When a write would pass the limit, the bytes up to the limit are written and the TCP connection is
  reset (RST); reaching the limit exactly also resets. A new connection starts again from zero, so a
  client that reconnects and resumes can finish.
- `bandwidth_bytes_per_s` caps SFTP write throughput per SSH connection.
- `latency_ms` is added once to each exec request (before the command runs) and once to each SFTP request.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from macsim.spec import Faults


@dataclass
class ConnState:
    """Per-connection fault accounting."""

    sftp_bytes: int = 0
    next_free: float = field(default_factory=time.monotonic)  # bandwidth: when the link is idle again


def reset_transport(transport: Any) -> None:
    """Abort a TCP transport with an RST (SO_LINGER 0), the way a rebooting Mac or a dropped link looks
    to the client: its next read fails with ECONNRESET instead of a clean EOF."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # already closed
    transport.abort()


async def apply_latency(faults: Faults) -> None:
    """Sleep for the host's configured latency, if any."""
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)


async def throttle(state: ConnState, faults: Faults, nbytes: int) -> None:
    """Delay a write of `nbytes` so this connection's SFTP writes stay under the bandwidth cap."""
    cap = faults.bandwidth_bytes_per_s
    if not cap:
        return
    now = time.monotonic()
    start = max(now, state.next_free)
    state.next_free = start + nbytes / cap
    delay = state.next_free - now
    if delay > 0:
        await asyncio.sleep(delay)


def sftp_allowance(state: ConnState, faults: Faults, nbytes: int) -> tuple[int, bool]:
    """How many of `nbytes` may still be written on this connection, and whether the connection must be
    reset after writing them (the drop_after_sftp_bytes limit is reached)."""
    limit = faults.drop_after_sftp_bytes
    if limit is None:
        state.sftp_bytes += nbytes
        return nbytes, False
    room = max(0, limit - state.sftp_bytes)
    if nbytes < room:
        state.sftp_bytes += nbytes
        return nbytes, False
    state.sftp_bytes += room
    return room, True


class HangProtocol(asyncio.Protocol):
    """`hang_after_accept`: hold the TCP connection open and never send the SSH banner."""

    def __init__(self) -> None:
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        pass  # the client's banner goes unanswered

    def abort(self) -> None:
        reset_transport(self.transport)
