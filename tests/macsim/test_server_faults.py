"""Each fault knob, over real SSH."""

from __future__ import annotations

import asyncio
import time

import asyncssh
import pytest

from macsim import fleet as fleet_mod
from macsim.fleet import Fleet, SimHost
from macsim.server import HANGUP_STATUS
from macsim.spec import SpecError

from .conftest import connect


async def _upload(fleet: Fleet, host: SimHost, path: str, data: bytes) -> None:
    async with connect(fleet, host) as conn, conn.start_sftp_client() as sftp:
        async with sftp.open(path, "wb") as f:
            await f.write(data)


async def test_refuse_connections_closes_the_port_and_reopens_it(fleet: Fleet, host: SimHost) -> None:
    port = host.port
    fleet.set_faults("mac-01", refuse_connections=True)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    fleet.set_faults("mac-01", refuse_connections=False)
    async with connect(fleet, host) as conn:
        assert (await conn.run("echo back", check=False)).stdout == "back\n"
    assert host.port == port


async def test_refuse_connections_from_the_spec(tmp_path) -> None:
    from .conftest import small_spec, transport_exec

    spec = small_spec(1, faults={"refuse_connections": True})
    async with Fleet.start(spec, tmp_path / "s", exec_handler=transport_exec) as fleet:
        host = fleet.hosts["mac-01"]
        assert host.port > 0
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", host.port)


async def test_hang_after_accept_never_sends_a_banner(fleet: Fleet, host: SimHost) -> None:
    fleet.set_faults("mac-01", hang_after_accept=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.5)
    writer.close()
    with pytest.raises((TimeoutError, asyncio.TimeoutError)):
        async with connect(fleet, host, connect_timeout=0.5):
            pass
    fleet.set_faults("mac-01", hang_after_accept=False)
    async with connect(fleet, host) as conn:
        assert (await conn.run("echo ok", check=False)).exit_status == 0


async def test_drop_after_sftp_bytes_resets_per_connection(fleet: Fleet, host: SimHost) -> None:
    fleet.set_faults("mac-01", drop_after_sftp_bytes=1000)
    with pytest.raises((asyncssh.SFTPConnectionLost, asyncssh.ConnectionLost, ConnectionResetError)):
        await _upload(fleet, host, "/tmp/big", b"x" * 5000)
    assert host.mac.fs.read_bytes("/tmp/big") == b"x" * 1000  # written up to the limit, then reset
    await _upload(fleet, host, "/tmp/small", b"y" * 600)  # a new connection counts from zero
    assert host.mac.fs.read_bytes("/tmp/small") == b"y" * 600
    fleet.set_faults("mac-01", drop_after_sftp_bytes=None)
    await _upload(fleet, host, "/tmp/big", b"z" * 5000)
    assert host.mac.fs.read_bytes("/tmp/big") == b"z" * 5000


async def test_latency_is_added_to_each_exec_round_trip(fleet: Fleet, host: SimHost) -> None:
    async with connect(fleet, host) as conn:
        await conn.run("echo warm-up", check=False)  # the first command also creates the Mac's state
        t0 = time.monotonic()
        await conn.run("echo fast", check=False)
        fast = time.monotonic() - t0
        fleet.set_faults("mac-01", latency_ms=300)
        t0 = time.monotonic()
        await conn.run("echo slow", check=False)
        slow = time.monotonic() - t0
    assert slow >= 0.3
    assert slow - fast >= 0.2


async def test_latency_applies_to_sftp_requests(fleet: Fleet, host: SimHost) -> None:
    async with connect(fleet, host) as conn, conn.start_sftp_client() as sftp:
        fleet.set_faults("mac-01", latency_ms=150)
        t0 = time.monotonic()
        await sftp.stat("/private/tmp")
        await sftp.stat("/private/tmp")
        elapsed = time.monotonic() - t0
    assert elapsed >= 0.3


async def test_bandwidth_caps_sftp_writes(fleet: Fleet, host: SimHost) -> None:
    fleet.set_faults("mac-01", bandwidth_bytes_per_s=200_000)
    t0 = time.monotonic()
    await _upload(fleet, host, "/tmp/capped", b"b" * 100_000)
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.45  # 100 kB at 200 kB/s
    assert host.mac.fs.read_bytes("/tmp/capped") == b"b" * 100_000


async def test_reboot_resets_connections_refuses_then_serves_with_state_kept(
    fleet: Fleet, host: SimHost, monkeypatch
) -> None:
    boots: list[str] = []
    real_hook = fleet_mod._optional_hook

    def hook(module: str, name: str):
        if (module, name) == ("macsim.client1e.launchd", "boot"):
            return lambda mac: boots.append(mac.name)
        return real_hook(module, name)

    monkeypatch.setattr(fleet_mod, "_optional_hook", hook)
    await _upload(fleet, host, "/tmp/survivor", b"kept")
    booted_before = host.mac.state.booted_at
    boots.clear()
    async with connect(fleet, host) as conn:
        proc = await conn.create_process("sleep 30")
        while not host.mac.commands:
            await asyncio.sleep(0.02)
        reboot = asyncio.create_task(fleet.reboot("mac-01", downtime=0.6))
        await asyncio.sleep(0.2)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", host.port)
        result = await asyncio.wait_for(proc.wait(), 5)
        assert result.exit_status is None  # no exit status: the connection was reset under it
        with pytest.raises((asyncssh.ChannelOpenError, asyncssh.ConnectionLost, OSError)):
            await conn.run("echo on the old connection", check=False)
        await reboot
    assert host.mac.commands[0].exit_status == HANGUP_STATUS
    assert boots == ["mac-01"]
    assert host.mac.state.booted_at > booted_before
    async with connect(fleet, host) as conn:
        assert (await conn.run("echo up", check=False)).stdout == "up\n"
    assert host.mac.fs.read_bytes("/tmp/survivor") == b"kept"


async def test_reset_is_an_rst_not_a_clean_close(fleet: Fleet, host: SimHost) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
    try:
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"SSH-2.0-")
        assert host.server.reset_connections() == 1
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(64), 5)
    finally:
        writer.close()


def test_set_faults_rejects_unknown_knob_and_bad_value(fleet: Fleet) -> None:
    with pytest.raises(SpecError, match=r"mac-01: faults\.refuse_conections: unknown key"):
        fleet.set_faults("mac-01", refuse_conections=True)
    with pytest.raises(SpecError, match=r"faults\.latency_ms: Input should be greater than or equal to 0"):
        fleet.set_faults("mac-01", latency_ms=-5)
    with pytest.raises(KeyError, match="no host 'mac-99' in this fleet"):
        fleet.set_faults("mac-99", latency_ms=1)
    assert fleet.hosts["mac-01"].spec.faults.latency_ms == 0  # unchanged after the failures


async def test_other_knobs_changed_during_a_reboot_keep_the_port_closed(fleet: Fleet, host: SimHost) -> None:
    reboot = asyncio.create_task(fleet.reboot("mac-01", downtime=0.5))
    await asyncio.sleep(0.1)
    fleet.set_faults("mac-01", latency_ms=1)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", host.port)
    await reboot
    async with connect(fleet, host) as conn:
        assert (await conn.run("echo up", check=False)).stdout == "up\n"
