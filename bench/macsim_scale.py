"""How far one macsim process scales: start N idle hosts, then measure memory and exec cost.

    .venv/bin/python bench/macsim_scale.py [--hosts 1000] [--round-trips 300] [--connections 100]

Prints a small table: start time, RSS per idle host, RSS per open SSH connection, connect+auth time,
first-command latency (includes creating the host's file system lazily) and the median exec round trip on
one connection (the real macsim shell running `true`). Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncssh

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from macsim.__main__ import _raise_fd_limit
from macsim.fleet import Fleet
from macsim.spec import parse_spec


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def bench(n_hosts: int, round_trips: int, n_conns: int) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    spec = parse_spec({"hosts": [{"name": f"bench-{i:04d}"} for i in range(n_hosts)]})
    with tempfile.TemporaryDirectory(prefix="macsim-bench-") as tmp:
        gc.collect()
        rss0 = rss_bytes()
        t0 = time.perf_counter()
        async with Fleet.start(spec, Path(tmp) / "state") as fleet:
            start_s = time.perf_counter() - t0
            gc.collect()
            rss1 = rss_bytes()
            per_host = start_s / n_hosts * 1000
            rows.append((f"start {n_hosts} hosts", f"{start_s:.2f} s ({per_host:.2f} ms/host)"))
            rows.append(("RSS per idle host", f"{(rss1 - rss0) / n_hosts / 1024:.1f} KiB"))
            hosts = list(fleet.hosts.values())
            key = asyncssh.read_private_key(str(fleet.client_key_path))

            def kwargs(i: int) -> dict[str, object]:
                return {**hosts[i].connect_kwargs(), "client_keys": [key]}

            t0 = time.perf_counter()
            conn = await asyncssh.connect(**kwargs(0))
            rows.append(("connect + auth (one host)", f"{(time.perf_counter() - t0) * 1000:.1f} ms"))
            try:
                t0 = time.perf_counter()
                await conn.run("true", check=True)
                first_ms = (time.perf_counter() - t0) * 1000
                rows.append(("first command (creates host state)", f"{first_ms:.1f} ms"))
                samples = []
                for _ in range(round_trips):
                    t0 = time.perf_counter()
                    await conn.run("true", check=True)
                    samples.append(time.perf_counter() - t0)
                med = statistics.median(samples) * 1000
                p95 = statistics.quantiles(samples, n=20)[-1] * 1000
                rows.append((f"exec round trip, median of {round_trips}", f"{med:.2f} ms (p95 {p95:.2f} ms)"))
            finally:
                conn.close()
                await conn.wait_closed()

            n = min(n_conns, n_hosts)
            gc.collect()
            rss2 = rss_bytes()
            conns = await asyncio.gather(*(asyncssh.connect(**kwargs(i)) for i in range(n)))
            gc.collect()
            rss3 = rss_bytes()
            rows.append((f"RSS per open connection ({n}, both ends)", f"{(rss3 - rss2) / n / 1024:.1f} KiB"))
            for c in conns:
                c.close()
            await asyncio.gather(*(c.wait_closed() for c in conns))
            rows.append(("total RSS", f"{rss_bytes() / 1024 / 1024:.1f} MiB"))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--round-trips", type=int, default=300)
    ap.add_argument("--connections", type=int, default=100)
    args = ap.parse_args()
    _raise_fd_limit()
    rows = asyncio.run(bench(args.hosts, args.round_trips, args.connections))
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 30}")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
