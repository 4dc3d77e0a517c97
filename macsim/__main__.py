"""`python -m macsim`: serve a simulated fleet, or write the artifacts tests and the demo need.

    python -m macsim serve --spec fleet.yaml [--state-dir DIR]
    python -m macsim artifacts OUT --versions 8.0.1.23 8.0.2.5 --hosts fleet.yaml

Exit status: 0 on success (serve: after SIGINT/SIGTERM), 1 when a runtime step fails, 2 for bad usage or a
bad spec (the message names the field).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import signal
import sys
from pathlib import Path

from macsim.artifacts.cli import ArtifactsError, write_artifacts
from macsim.fleet import Fleet
from macsim.spec import SpecError

EXIT_USAGE = 2


def _raise_fd_limit() -> None:
    """Each host holds a listening socket and each connection a socket: lift the soft limit to the hard."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(spec_path: Path, state_dir: Path | None) -> int:
    """Start the fleet, print where each host listens, and run until SIGINT or SIGTERM."""
    _raise_fd_limit()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Fleet.start(spec_path, state_dir) as fleet:
        width = max(len(n) for n in fleet.hosts) if fleet.hosts else 4
        hwidth = max(len(h.hostname) for h in fleet.hosts.values()) if fleet.hosts else 8
        print(f"{'HOST':<{width}}  {'HOSTNAME':<{hwidth}}  {'ARCH':<6}  ADDRESS")
        for h in fleet.hosts.values():
            note = "  (refusing connections)" if h.spec.faults.refuse_connections else ""
            print(f"{h.name:<{width}}  {h.hostname:<{hwidth}}  {h.spec.arch:<6}  {h.address}:{h.port}{note}")
        print(f"client key: {fleet.client_key_path}")
        print(f"state dir: {fleet.state_dir}")
        print(f"serving {len(fleet.hosts)} hosts; stop with Ctrl-C or SIGTERM", flush=True)
        await stop.wait()
    print("stopped", flush=True)
    return 0


def artifacts(out: Path, versions: list[str], hosts: Path) -> int:
    report = write_artifacts(out, versions, hosts)
    for d in report.dmgs:
        print(f"dmg: {d}")
    print(f"certificates: {report.cert_manifest} ({len(report.hosts)} hosts)")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m macsim", description="A fleet of simulated Macs over SSH.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="start the fleet of a spec and serve until SIGINT/SIGTERM")
    s.add_argument("--spec", required=True, type=Path, help="the fleet spec (YAML)")
    s.add_argument("--state-dir", type=Path, default=None, help="keep host state here (default: temporary)")
    a = sub.add_parser("artifacts", help="write fake 1E Client DMGs and certificate artifacts")
    a.add_argument("out", type=Path, help="output directory")
    a.add_argument("--versions", nargs="+", required=True, help="client versions, e.g. 8.0.1.23 8.0.2.5")
    a.add_argument("--hosts", required=True, type=Path, help="the fleet spec whose hosts get PFX files")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return asyncio.run(serve(args.spec, args.state_dir))
        return artifacts(args.out, args.versions, args.hosts)
    except (SpecError, ArtifactsError) as e:
        print(f"macsim: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        print(f"macsim: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
