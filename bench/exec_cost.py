"""Controller CPU of the deploy's building blocks, one at a time: what a connect, an exec and an SFTP request
cost the controller, with asyncssh alone and through our transport (`workers.ssh`).

    .venv/bin/python bench/exec_cost.py                  # 100 Macs, 5 of each operation per Mac, 3 runs
    .venv/bin/python bench/exec_cost.py --hosts 50 --ops 10 --repeat 5

The fleet is `bench/deploy.py`'s: `python -m macsim serve` in other processes, so only the controller's
CPU (getrusage RUSAGE_SELF) is counted. Each mode connects to every Mac (concurrency 50), runs its
operation `--ops` times, and closes; its cost per operation is (mode - connect only) / ops, the minimum of
`--repeat` runs (the least disturbed). The modes:

- `connect`: connect and close (asyncssh alone; `ours connect` through `workers.ssh.connect`);
- `exec`: `true` (asyncssh `conn.run`; ours `Connection.run`, without and with sudo);
- `exec 16 packets`: a command printing 8 lines on stdout and 8 on stderr, each its own write, so its own
  packet (asyncssh alone) — the per-packet cost of output;
- `script of 8 steps`: `Connection.run_script` of 8 `true` lines under sudo, as the install's exec runs
  them (each step ends with a marker line on stdout and one on stderr: 16 packets);
- `sftp stat`: one `lstat` over an open SFTP session (asyncssh alone): the cost of an SFTP request.

Not a test: the figures depend on the machine. README quotes them under "Where the controller's CPU goes".
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "bench"))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402

import asyncssh  # noqa: E402
from deploy import Bed, Scenario, build_bed  # noqa: E402

from workers.ssh import HostKeyPolicy, SshAuth, SshTarget  # noqa: E402
from workers.ssh.connect import ENCRYPTION_ALGS, Connection, connect  # noqa: E402
from workers.ssh.sudo import NOPASSWD  # noqa: E402

SIXTEEN_WRITES = "; ".join(["echo out", "echo err >&2"] * 8)


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


Op = Callable[[asyncssh.SSHClientConnection, Connection | None], Awaitable[object]]


async def _raw_true(conn: asyncssh.SSHClientConnection, _: Connection | None) -> object:
    return await conn.run("true", check=True)


async def _raw_sixteen(conn: asyncssh.SSHClientConnection, _: Connection | None) -> object:
    result = await conn.run(SIXTEEN_WRITES, check=True, encoding=None)
    assert isinstance(result.stdout, bytes) and result.stdout.count(b"out") == 8
    return result


async def _raw_stat(conn: asyncssh.SSHClientConnection, _: Connection | None) -> object:
    raise NotImplementedError  # run through the SFTP session instead (see `run_mode`)


async def _ours_true(_: asyncssh.SSHClientConnection, c: Connection | None) -> object:
    assert c is not None
    return await c.run(["true"])


async def _ours_sudo_true(_: asyncssh.SSHClientConnection, c: Connection | None) -> object:
    assert c is not None
    return await c.run(["true"], sudo=NOPASSWD)


async def _ours_script8(_: asyncssh.SSHClientConnection, c: Connection | None) -> object:
    assert c is not None
    result = await c.run_script([["true"]] * 8, sudo=NOPASSWD)
    assert result.ok
    return result


MODES: dict[str, tuple[bool, Op | None]] = {  # name: (through our transport, the operation)
    "connect (asyncssh)": (False, None),
    "exec `true` (asyncssh)": (False, _raw_true),
    "exec, 16 packets of output (asyncssh)": (False, _raw_sixteen),
    "sftp lstat, session opened once (asyncssh)": (False, _raw_stat),
    "connect (ours)": (True, None),
    "exec `true` (ours)": (True, _ours_true),
    "exec `true` under sudo (ours)": (True, _ours_sudo_true),
    "script of 8 steps under sudo (ours)": (True, _ours_script8),
}


async def run_mode(bed: Bed, name: str, ops: int, concurrency: int) -> float:
    """Controller CPU ms per Mac for one mode: connect, `ops` operations, close, on every Mac."""
    ours, op = MODES[name]
    key = asyncssh.read_private_key(str(bed.client_key))
    known_text = Path(bed.settings.ssh.known_hosts or "").read_text()
    sem = asyncio.Semaphore(concurrency)

    async def one(host: str) -> None:
        async with sem:
            if ours:
                c = await connect(SshTarget(host="127.0.0.1", port=bed.ports[host], username="admin"),
                                  HostKeyPolicy(known_hosts=bed.settings.ssh.known_hosts),
                                  SshAuth(key_files=(bed.client_key,)))  # fmt: skip
                try:
                    for _ in range(ops if op is not None else 0):
                        await op(c.ssh, c)  # type: ignore[misc]
                finally:
                    await c.close()
                return
            conn = await asyncssh.connect("127.0.0.1", bed.ports[host], username="admin",
                                          known_hosts=asyncssh.import_known_hosts(known_text),
                                          client_keys=[key], encryption_algs=ENCRYPTION_ALGS)  # fmt: skip
            try:
                if op is _raw_stat:
                    async with conn.start_sftp_client() as sftp:
                        for _ in range(ops):
                            await sftp.lstat(".")
                elif op is not None:
                    for _ in range(ops):
                        await op(conn, None)
            finally:
                conn.close()
                await conn.wait_closed()

    c0 = cpu_self()
    await asyncio.gather(*(one(h) for h in bed.names))
    return (cpu_self() - c0) * 1000 / len(bed.names)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--ops", type=int, default=5, help="operations of a mode per Mac (default 5)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=50)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="macfleet-execcost-"))
    bed = build_bed(Scenario(args.hosts, 1), base)
    bed.fleet.start(args.hosts)
    try:
        per_mac = {name: min(asyncio.run(run_mode(bed, name, args.ops, args.concurrency))
                             for _ in range(args.repeat)) for name in MODES}  # fmt: skip
    finally:
        bed.fleet.stop()
        bed.engine.dispose()
        shutil.rmtree(base, ignore_errors=True)
    print(f"\ncontroller CPU, {args.hosts} Macs, concurrency {args.concurrency}, {args.ops} operations per "
          f"Mac, least of {args.repeat} runs\n")
    print("| operation | ms per Mac (connect + ops + close) | ms per operation |")
    print("|---|---|---|")
    for name, ms in per_mac.items():
        base_ms = per_mac["connect (ours)" if MODES[name][0] else "connect (asyncssh)"]
        each = "—" if MODES[name][1] is None else f"{(ms - base_ms) / args.ops:.2f}"
        print(f"| {name} | {ms:.2f} | {each} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
