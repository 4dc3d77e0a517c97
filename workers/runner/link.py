"""The SSH connection of one device job: opened by the connect step, opened again by a step that finds it
dropped (an upload cut off, an always-step after the link went down)."""

from __future__ import annotations

from workers.runner.work import DeviceWork
from workers.ssh import Connection, Timeouts, connect


class Link:
    def __init__(self, work: DeviceWork, timeouts: Timeouts) -> None:
        self.w = work
        self.timeouts = timeouts
        self.conn: Connection | None = None

    async def open(self) -> Connection:
        """A new connection (TransportError when there is none to be had)."""
        self.conn = await connect(self.w.target, self.w.host_keys, self.w.auth, self.timeouts)
        return self.conn

    async def reconnect(self) -> Connection:
        if self.conn is not None and not self.conn.is_closed:
            return self.conn
        return await self.open()

    @property
    def is_down(self) -> bool:
        return self.conn is None or self.conn.is_closed

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
