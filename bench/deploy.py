"""Deploy benchmark: the full install through the local driver against a macsim fleet, next to its ceiling.

    .venv/bin/python bench/deploy.py --quick                       # 20 Macs x 2 MB, once (about a minute)
    .venv/bin/python bench/deploy.py                               # 200 x 30 MB and 1000 x 5 MB, 3 repeats
    .venv/bin/python bench/deploy.py --scenario 200x30 --repeat 3 --concurrency 25 50 100
    .venv/bin/python bench/deploy.py --scaling 100,300,1000                # deploy only, N Macs x 5 MB
    .venv/bin/python bench/deploy.py --transport --scenario 2x30           # one stream: OpenSSH sftp vs ours

The fleet runs in OTHER processes (`python -m macsim serve`, one per CPU with the hosts split between them,
started and stopped by PID; `--fleet-cpus`/`--controller-cpus` pin them apart where there are cores to
spare) so the controller is measured alone: wall time of `drive()` on SQLite, per-device durations
(median, p95), the controller's CPU seconds per device (getrusage RUSAGE_SELF: event loop, recorder
thread, worker threads), exec round trips per device, peak RSS (VmHWM), the fleet's CPU seconds, and the
CPU ratio (the deploy's controller + fleet CPU over the ceiling's: with every core busy, the floor of the
wall-time ratio). Each deploy also prints the controller's CPU by part (`CpuParts`): the event loop's
thread, the recorder's writer thread, and each function handed to a worker thread (the job's claim and
inputs, the PFX re-wrap), each by its thread's own clock. `--profile` (CPU time of the loop's thread, not
GIL waits) and `--fleet-profile` cProfile both sides. Each phase runs in a forked child
process of its own, so its peak RSS is its own (a process's peak never falls, and memory a phase freed is
not handed back: a 5 MB scenario after a 30 MB one in one process reported the 30 MB peak); the child
starts from the bench's memory (database, PFXs), which is in every figure. After the repeats, one more
deploy at `--rss-concurrency` (default 200) gives the table's "peak RSS at c=200" (issue 13: <= 512 MiB at
concurrency 50, <= 1 GiB at 200, for any DMG size). Uploads keep to `[ssh] upload_block_size`,
`upload_window` and `upload_budget` (`--upload-block/--upload-window/--upload-budget` in MiB override them).

The transport's own number: before the repeats, one Mac of a fresh fleet receives the DMG over and over
(about 256 MB, at least 4 times) over one connection from each of three clients, each alone: a single
OpenSSH `sftp` client (C; batch mode, the deploy's cipher, the time of a one-put session subtracted so
connect and login do not count), our bounded writer (what the deploy and the ceiling use), and asyncssh's
`put` with its defaults; MiB/s and client CPU per MiB each. The server is macsim's SFTP over SSH on
127.0.0.1, the same server the bare push writes to,
so "ceiling MiB/s" (every Mac's bytes over the ceiling's wall time) and "one OpenSSH sftp MiB/s" sit side
by side in the table. (A real sshd would measure OpenSSH against OpenSSH, not the server the deploy pays;
on these 2 shared cores macsim's Python SFTP server is part of the limit.) `--transport` prints only
these.

`--scaling 100,300,1000`: deploys only (no ceiling), to N Macs x 5 MB each at the first `--concurrency`,
`--repeat` times (default 3): deploy wall, controller CPU per Mac and peak RSS per fleet size, to show the
per-Mac cost stays flat as the fleet grows.

The ceiling is measured in the same run on the same fleet spec (same ports, host keys, concurrency): a bare
asyncssh SFTP push of the same DMG bytes to every Mac, one connection per Mac (connect + write + close),
with the cipher the deploy prefers (aes128-gcm; asyncssh's default ChaCha20 would make the ceiling slower)
and the deploy's bound on bytes in flight (`workers.ssh.inflight.write_pipelined`), so the ratio is fair.
Each phase (ceiling, deploy) starts the fleet fresh — every Mac's file system is removed before the phase,
the host keys are kept — so both pay the same first-touch cost on the Mac side; what the fleet received is
removed after each phase. Free disk is checked first; a scenario that does not fit is scaled down with a
message. Targets (issue 4): deploy wall <= 1.25 x ceiling; <= 8 exec round trips per device.

The install.sh method copies install.sh and the pkg out of the mounted image into a 0700 stage directory (the
1E guide's "copy the script to a separate directory together with the package"), a real copy where earlier
versions linked the pkg. Its cost per Mac is measured after the ceiling's push, outside the ceiling's wall
time, on the same fleet: the extra bytes (the pkg's size) and the `cp -p` exec's time minus a bare exec's.
macsim pads its images OUTSIDE the pkg (the pkg stays ~10 KB whatever the scenario's size), so that figure
is a floor; in 1E's image the pkg is nearly the whole DMG, and the copy writes about the DMG's size again:
the probe also times `cp -p` of a DMG-sized file into the stage (the "DMG-sized copy" column).

Not a test: the figures depend on the machine (2 cores here, shared by the controller and the fleet).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncssh
import yaml
from cryptography.fernet import Fernet
from cryptography.x509 import load_pem_x509_certificate
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from inventory.formats import loads
from macsim.artifacts.certs import write_cert_artifacts
from macsim.artifacts.dmg import write_dmg
from macsim.client1e.dmg import read_dmg
from macsim.spec import parse_spec
from orchestrator.artifacts import add_artifact
from orchestrator.certs.store import BoxVault, add_cas, import_pfx
from orchestrator.config import Settings, SshSettings
from orchestrator.inventory_store import import_inventory
from orchestrator.secrets import SecretBox
from orchestrator.state.db import create_db_engine, init_schema
from orchestrator.state.models import CaCertificate, Device, DeviceJob, Run, StepRun
from tasks.install.params import DmgRef
from workers.local import drive
from workers.runner.job import upload_limits_of
from workers.runner.recorder import Recorder
from workers.ssh.connect import ENCRYPTION_ALGS
from workers.ssh.inflight import set_upload_limits, write_pipelined

VERSION = "8.0.2.5"
SWITCH = "tachyon.lab.test:4000"
BACKGROUND = "https://tachyon.lab.test:443/Background/"
MB = 1_000_000
PER_MAC_OVERHEAD = 4 * MB  # skeleton, keychain, installed payload, logs (measured: well under this)
DISK_MARGIN = 2_000 * MB
ROUND_TRIP_TARGET = 8
RATIO_TARGET = 1.25
CEILING_DIR = "/private/tmp"


@dataclass(frozen=True)
class Scenario:
    hosts: int
    dmg_mb: int

    @property
    def label(self) -> str:
        return f"{self.hosts}x{self.dmg_mb}MB"


@dataclass
class Phase:
    wall: float
    cpu: float  # controller CPU seconds (user + system) during the phase
    fleet_cpu: float  # the fleet process's CPU seconds during the phase
    peak_rss: int  # bytes, VmHWM of this process during the phase
    durations: list[float] = field(default_factory=list)
    round_trips: list[int] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)  # step -> median duration (s) over devices
    # ceiling phase only: the install.sh stage copy (`cp -p` of the pkg out of the mounted image, as the
    # install step does it) timed as one exec per Mac, and a bare `true` exec on the same connection
    stage_copy: list[float] = field(default_factory=list)
    bare_exec: list[float] = field(default_factory=list)
    sized_copy: list[float] = field(default_factory=list)  # `cp -p` of a file the DMG's size (1E's pkg)
    start_rss: int = 0  # bytes, VmRSS when the phase began (its process's baseline: the bed)
    cpu_parts: dict[str, float] = field(default_factory=dict)  # CPU seconds by thread/part (`CpuParts`)


@dataclass
class Sample:
    concurrency: int
    ceiling: Phase
    deploy: Phase

    @property
    def ratio(self) -> float:
        return self.deploy.wall / self.ceiling.wall

    @property
    def cpu_ratio(self) -> float:
        """(controller + fleet) CPU of the deploy over the ceiling's: when the machine's cores are all busy
        (fleet and controller share them here), the wall-time ratio cannot go below this."""
        return (self.deploy.cpu + self.deploy.fleet_cpu) / (self.ceiling.cpu + self.ceiling.fleet_cpu)


# ------------------------------------------------------------------ process measurements


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs); harmless where refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of another process, from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


# ------------------------------------------------------------------ disk


def du(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def fit_to_disk(sc: Scenario, base: Path) -> Scenario:
    """The scenario, or fewer hosts when the disk under `base` cannot hold what the fleet will receive
    (the DMG on each Mac, the mounted copy macsim keeps, the installed payload; plus a margin)."""
    free = shutil.disk_usage(base).free
    per_mac = 2 * sc.dmg_mb * MB + PER_MAC_OVERHEAD
    need = sc.hosts * per_mac + sc.dmg_mb * MB + DISK_MARGIN
    if need <= free:
        print(f"[{sc.label}] disk: {free / 1e9:.1f} GB free under {base}, "
              f"needs about {need / 1e9:.1f} GB: ok")
        return sc
    hosts = max(1, (free - DISK_MARGIN - sc.dmg_mb * MB) // per_mac)
    print(f"[{sc.label}] disk: {free / 1e9:.1f} GB free under {base}, needs about {need / 1e9:.1f} GB: "
          f"SCALED DOWN to {hosts} hosts")
    return Scenario(int(hosts), sc.dmg_mb)


# ------------------------------------------------------------------ the fleet, in another process


def cpu_list(text: str) -> set[int]:
    """`0`, `2-5` or `0,2-3` as a set of CPU numbers."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def free_ports(n: int) -> list[int]:
    """n free TCP ports on 127.0.0.1 BELOW the ephemeral range, so that no outgoing connection (ours or
    another process's) takes one of them between the fleet's restarts."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    ports: list[int] = []
    port = max(1024, low - 1 - 4 * n - 2000)
    while len(ports) < n and port < low:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                port += 1
                continue
        ports.append(port)
        port += 1
    if len(ports) < n:
        raise RuntimeError(f"not {n} free ports below the ephemeral range ({low})")
    return ports


class FleetProcess:
    """`python -m macsim serve` for a spec, as `count` processes with the hosts split between them (a real
    fleet's Macs each have their own CPU; one process would serialize every Mac's work on one core), started
    and stopped by PID. The state dir outlives them (host keys, client key); each Mac's file system is wiped
    by `wipe()`. With `profile_dir`, each process runs under cProfile and writes `macsim-K.prof` there."""

    def __init__(self, spec_path: Path, state_dir: Path, log_path: Path) -> None:
        self.spec_path, self.state_dir, self.log_path = spec_path, state_dir, log_path
        self.procs: list[subprocess.Popen[bytes]] = []
        self.profile_dir: Path | None = None
        self.cpus: set[int] | None = None  # pin every fleet process to these CPUs (--fleet-cpus)
        self.count = 1  # processes to split the hosts between (--fleet-procs)

    def start(self, hosts: int) -> None:
        spec = yaml.safe_load(self.spec_path.read_text())
        parts = [spec["hosts"][k :: self.count] for k in range(self.count)]
        parts = [p for p in parts if p]
        logs: list[Path] = []
        for k, part in enumerate(parts):
            sub = self.spec_path.with_name(f"{self.spec_path.stem}-{k}.yaml")
            sub.write_text(yaml.safe_dump({**spec, "hosts": part}))
            log_path = self.log_path.with_name(f"{self.log_path.stem}-{k}.log")
            prof: list[str] = []
            if self.profile_dir is not None:
                self.profile_dir.mkdir(parents=True, exist_ok=True)
                prof = ["-m", "cProfile", "-o", str(self.profile_dir / f"macsim-{k}.prof")]
            with log_path.open("wb") as log:
                self.procs.append(subprocess.Popen(
                    [sys.executable, *prof, "-m", "macsim", "serve", "--spec", str(sub),
                     "--state-dir", str(self.state_dir)],
                    stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1],
                ))
            if self.cpus:
                os.sched_setaffinity(self.procs[-1].pid, self.cpus)  # before it starts any thread
            logs.append(log_path)
        deadline = time.monotonic() + 120 + hosts * 0.2
        for proc, log_path, part in zip(self.procs, logs, parts, strict=True):
            while True:
                text = log_path.read_text(errors="replace")
                if f"serving {len(part)} hosts" in text:
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"macsim serve did not come up ({proc.returncode}):\n{text[-2000:]}")
                time.sleep(0.1)

    def cpu(self) -> float:
        """CPU seconds of every fleet process so far."""
        return sum(cpu_of(p.pid) for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs = []

    def wipe(self) -> int:
        """Remove everything the Macs hold except their host keys; returns the bytes removed."""
        removed = 0
        hosts = self.state_dir / "hosts"
        for host in hosts.iterdir() if hosts.exists() else ():
            for entry in host.iterdir():
                if entry.name.startswith("ssh_host_"):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    removed += du(entry)
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    removed += entry.lstat().st_size
                    entry.unlink(missing_ok=True)
        return removed

    def received(self) -> int:
        hosts = self.state_dir / "hosts"
        return du(hosts) if hosts.exists() else 0

    def known_hosts(self, ports: dict[str, int]) -> str:
        lines = []
        for name, port in ports.items():
            key = asyncssh.read_private_key(str(self.state_dir / "hosts" / name / "ssh_host_ed25519_key"))
            lines.append(f"[127.0.0.1]:{port} {key.export_public_key('openssh').decode().strip()}")
        return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the controller side


@dataclass
class Bed:
    """One scenario's fixed parts: fleet spec, host keys, database with inventory, CAs, PFXs and the DMG."""

    sc: Scenario
    base: Path
    fleet: FleetProcess
    engine: Engine
    settings: Settings
    names: list[str]
    ports: dict[str, int]
    dmg: Path
    artifact_sha256: str
    ca_sha256s: list[str]
    client_key: Path

    def create_run(self) -> str:
        params = {
            "version": VERSION, "switch": SWITCH, "background_url": BACKGROUND,
            "artifact_sha256": self.artifact_sha256, "method": "install.sh", "expected_team_id": None,
            "cache_dmg": False, "verify_timeout": 120.0, "min_free_bytes": 0, "ca_sha256s": self.ca_sha256s,
        }
        with Session(self.engine) as s:
            devices = s.exec(select(Device).order_by(col(Device.name))).all()
            run = Run(kind="install", params_json=json.dumps(params), created_by="bench")
            s.add(run)
            s.flush()
            for d in devices:
                s.add(DeviceJob(run_id=run.id, device_id=d.id))
            s.commit()
            return run.id


def build_bed(sc: Scenario, base: Path, upload: dict[str, int] | None = None) -> Bed:
    t0 = time.perf_counter()
    names = [f"bench-{i:04d}" for i in range(sc.hosts)]
    ports = dict(zip(names, free_ports(sc.hosts), strict=True))
    state = base / "fleet"
    spec = {"hosts": [{"name": n, "port": ports[n], "arch": "arm64" if i % 2 else "x86_64", "rosetta": True}
                      for i, n in enumerate(names)]}
    spec_path = base / "fleet.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    hostnames = {h.name: h.hostname for h in parse_spec(spec).hosts}
    fleet = FleetProcess(spec_path, state, base / "macsim.log")
    fleet.start(sc.hosts)  # once, to create the host keys and the client key
    fleet.stop()
    fleet.wipe()
    known = base / "known_hosts"
    known.write_text(fleet.known_hosts(ports))
    client_key = state / "client_ed25519"

    arts = base / "artifacts"
    dmg = write_dmg(arts, VERSION, size_bytes=sc.dmg_mb * MB)
    certs = write_cert_artifacts(arts, hostnames)
    engine = create_db_engine(f"sqlite:///{base / 'state.db'}")
    init_schema(engine)
    settings = Settings(
        data_dir=base / "data",
        database_url=str(engine.url),
        secret_key=Fernet.generate_key().decode(),
        ssh=SshSettings.model_validate({"known_hosts": known, "command_timeout": 120.0, "concurrency": 50,
                                        **(upload or {})}),
    )
    inv = {
        "groups": [{"name": "bench"}],
        "hosts": [{"name": n, "address": "127.0.0.1", "port": ports[n], "user": "admin",
                   "auth": {"key": str(client_key)}, "groups": ["bench"]} for n in names],
    }
    box = SecretBox(settings.secret_key.encode())  # type: ignore[union-attr]
    with Session(engine) as s:
        import_inventory(s, loads(json.dumps(inv), "inventory.yaml"), "bench")
        add_cas(s, [load_pem_x509_certificate(p.pem.read_bytes()) for p in (certs.lab_ca, certs.switch_ca)])
        for n in names:
            pfx = certs.host_pfx[n]
            import_pfx(s, BoxVault(box), pfx.read_bytes(), certs.password_for(pfx).encode(), str(pfx),
                       now=datetime.now(UTC), device_name=n)
        art, _ = add_artifact(s, settings.data_dir, dmg)
        s.commit()
        sha = art.sha256
        cas = [c.sha256 for c in s.exec(select(CaCertificate)).all()]
    print(f"[{sc.label}] setup (host keys, {sc.hosts} PFXs, database): {time.perf_counter() - t0:.1f} s")
    return Bed(sc, base, fleet, engine, settings, names, ports, dmg, sha, cas, client_key)


async def ceiling_push(bed: Bed, concurrency: int) -> tuple[list[float], list[str]]:
    """Connect, SFTP write the DMG, close — for every Mac, `concurrency` at once, with the deploy's upload
    limits (window per upload, budget for the process: `[ssh] upload_*`) so the ratio stays fair."""
    key = asyncssh.read_private_key(str(bed.client_key))
    known = asyncssh.import_known_hosts(Path(bed.settings.ssh.known_hosts or "").read_text())
    sem = asyncio.Semaphore(concurrency)
    durations: list[float] = []
    failed: list[str] = []
    size = bed.dmg.stat().st_size
    set_upload_limits(upload_limits_of(bed.settings))

    async def one(name: str) -> None:
        async with sem:
            t0 = time.monotonic()
            try:
                conn = await asyncssh.connect("127.0.0.1", bed.ports[name], username="admin",
                                              known_hosts=known, client_keys=[key],
                                              encryption_algs=ENCRYPTION_ALGS)
                try:
                    async with conn.start_sftp_client() as sftp, \
                            sftp.open(f"{CEILING_DIR}/{bed.dmg.name}", "wb") as fh:
                        await write_pipelined(fh, bed.dmg, size)  # the deploy's bound on bytes in flight
                finally:
                    conn.close()
                    await conn.wait_closed()
            except (OSError, asyncssh.Error) as e:
                failed.append(f"{name}: {e}")
                return
            durations.append(time.monotonic() - t0)

    await asyncio.gather(*(one(n) for n in bed.names))
    return durations, failed


async def stage_copy_cost(
    bed: Bed, concurrency: int
) -> tuple[list[float], list[float], list[float], list[str]]:
    """On every Mac holding the ceiling's DMG: attach it, then time `cp -p PKG STAGE/` as one exec, a bare
    `true` exec on the same connection (the difference is the copy's own cost), and `cp -p` of the DMG
    itself into the stage (a file of the size 1E's pkg has: the pkg is nearly the whole image), then detach
    and remove."""
    key = asyncssh.read_private_key(str(bed.client_key))
    known = asyncssh.import_known_hosts(Path(bed.settings.ssh.known_hosts or "").read_text())
    sem = asyncio.Semaphore(concurrency)
    pkg = DmgRef(VERSION, bed.artifact_sha256, bed.dmg.stat().st_size, bed.dmg.name).pkg_name
    mnt, stage = f"{CEILING_DIR}/bench-mnt", f"{CEILING_DIR}/bench-stage"
    dmg = f"{CEILING_DIR}/{bed.dmg.name}"
    copies: list[float] = []
    bare: list[float] = []
    sized: list[float] = []
    failed: list[str] = []

    async def timed(conn: asyncssh.SSHClientConnection, argv: list[str]) -> float:
        t0 = time.monotonic()
        await conn.run(shlex.join(["sudo", "-n", *argv]), check=True)
        return time.monotonic() - t0

    async def one(name: str) -> None:
        async with sem:
            try:
                conn = await asyncssh.connect("127.0.0.1", bed.ports[name], username="admin",
                                              known_hosts=known, client_keys=[key],
                                              encryption_algs=ENCRYPTION_ALGS)
                try:
                    attach = 'mkdir -p -m 0700 "$2" && hdiutil attach -nobrowse -noverify -mountpoint "$1" '
                    attach += '"$3"'
                    await timed(conn, ["/bin/sh", "-c", attach + " >/dev/null", "attach", mnt, stage, dmg])
                    bare.append(await timed(conn, ["true"]))
                    copies.append(await timed(conn, ["cp", "-p", f"{mnt}/{pkg}", f"{stage}/"]))
                    sized.append(await timed(conn, ["cp", "-p", dmg, f"{stage}/"]))
                    await timed(conn, ["/bin/sh", "-c", 'hdiutil detach "$1" >/dev/null; rm -rf "$2" "$3"',
                                       "detach", mnt, stage, dmg])
                finally:
                    conn.close()
                    await conn.wait_closed()
            except (OSError, asyncssh.Error) as e:
                failed.append(f"{name}: stage copy: {e}")

    await asyncio.gather(*(one(n) for n in bed.names))
    return copies, bare, sized, failed


def in_child(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`work()` in a forked child process, its JSON-able result returned: a phase's peak RSS is then its
    own (a process's peak never falls, and memory an earlier phase freed is not handed back to the
    system). The child starts with this process's memory (the bed), so its peak includes that baseline."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        code = 0
        try:
            payload = json.dumps({"ok": work()})
        except BaseException as e:  # everything goes back to the parent
            traceback.print_exc()
            payload, code = json.dumps({"error": f"{type(e).__name__}: {e}"}), 1
        with os.fdopen(write_fd, "w") as out:
            out.write(payload)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as inp:
        text = inp.read()
    os.waitpid(pid, 0)
    data = json.loads(text or '{"error": "the child process died without a result"}')
    if "error" in data:
        raise RuntimeError(f"phase failed in its own process: {data['error']}")
    return dict(data["ok"])


@dataclass
class Stream:
    """One client sending the DMG over one connection, `puts` times: MiB/s and client CPU per MiB."""

    client: str
    mib_s: float
    cpu_ms_per_mib: float


def openssh_sftp_stream(bed: Bed, name: str, puts: int) -> Stream:
    """A single OpenSSH `sftp` client (C) putting the DMG `puts` times in one session to the Mac `name` with
    the deploy's cipher; the time of a one-put session is subtracted, so connect and login do not count."""
    batch = bed.base / "sftp.batch"
    cmd = ["sftp", "-q", "-F", "/dev/null", "-b", str(batch), "-P", str(bed.ports[name]),
           "-i", str(bed.client_key),
           "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
           "-o", f"UserKnownHostsFile={bed.settings.ssh.known_hosts}", "-c", ENCRYPTION_ALGS[0],
           "admin@127.0.0.1"]
    times: list[float] = []
    cpus: list[float] = []
    for n in (1, 1 + puts):
        batch.write_text("".join(f'put "{bed.dmg}" "{CEILING_DIR}/{bed.dmg.name}"\n' for _ in range(n)))
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=600)
        times.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
    mib = puts * bed.dmg.stat().st_size / 2**20
    if times[1] <= times[0]:  # the puts took less than the noise of a session's start
        return Stream("OpenSSH sftp", float("nan"), float("nan"))
    return Stream("OpenSSH sftp", mib / (times[1] - times[0]), (cpus[1] - cpus[0]) * 1000 / mib)


async def asyncssh_stream(bed: Bed, name: str, puts: int, how: str) -> Stream:
    """Our client on one connection: `bounded` writes as the deploy does (`write_pipelined`), `put` with
    asyncssh's own defaults (the server's block size, up to 128 requests: the whole file in flight)."""
    set_upload_limits(upload_limits_of(bed.settings))
    key = asyncssh.read_private_key(str(bed.client_key))
    known = asyncssh.import_known_hosts(Path(bed.settings.ssh.known_hosts or "").read_text())
    size = bed.dmg.stat().st_size
    target = f"{CEILING_DIR}/{bed.dmg.name}"
    async with asyncssh.connect("127.0.0.1", bed.ports[name], username="admin", known_hosts=known,
                                client_keys=[key], encryption_algs=ENCRYPTION_ALGS) as conn, \
            conn.start_sftp_client() as sftp:
        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(puts):
            if how == "put":
                await sftp.put(str(bed.dmg), target)
            else:
                async with sftp.open(target, "wb") as fh:
                    await write_pipelined(fh, bed.dmg, size)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    mib = puts * size / 2**20
    label = "asyncssh put (defaults)" if how == "put" else "bounded writer (deploy, ceiling)"
    return Stream(label, mib / wall, cpu * 1000 / mib)


def transport_streams(bed: Bed, total_mb: int = 256) -> list[Stream]:
    """Single-stream MiB/s against the first Mac of a fresh fleet, same cipher, each client in its own
    process: OpenSSH's sftp (the transport's limit with this server), our bounded writer, asyncssh's put;
    the DMG is sent over and over, about `total_mb` MB in all (at least 4 times)."""
    puts = max(4, -(-total_mb // max(1, bed.sc.dmg_mb)))
    bed.fleet.wipe()
    bed.fleet.start(bed.sc.hosts)
    name = bed.names[0]
    try:
        streams = [openssh_sftp_stream(bed, name, puts)]
        for how in ("bounded", "put"):
            def one(how: str = how) -> dict[str, Any]:
                return asdict(asyncio.run(asyncssh_stream(bed, name, puts, how)))
            streams.append(Stream(**in_child(one)))
    finally:
        bed.fleet.stop()
        bed.fleet.wipe()
    for st in streams:
        print(f"  one stream: {st.client:<34} {st.mib_s:7.1f} MiB/s  "
              f"client CPU {st.cpu_ms_per_mib:6.2f} ms/MiB", flush=True)
    return streams


class CpuParts:
    """The controller's CPU by part during a deploy: the recorder's writer thread and each function the
    runner hands to a worker thread (`asyncio.to_thread`: the job's claim and inputs, the PFX re-wrap...),
    each timed with its thread's own clock (`time.thread_time`), so GIL waits are not counted. The event
    loop's thread is the phase's own thread (timed by the caller); what is left is "other threads" (the
    executor's idle bookkeeping, asyncssh's getaddrinfo). A bench-only wrapper, removed on exit."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def _add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def __enter__(self) -> CpuParts:
        self._to_thread, self._writer = asyncio.to_thread, Recorder._loop
        parts, to_thread, writer = self, self._to_thread, self._writer

        async def timed_to_thread(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            name = getattr(fn, "__qualname__", type(fn).__name__).replace(".<locals>", "")

            def timed() -> Any:
                c0 = time.thread_time()
                try:
                    return fn(*args, **kwargs)
                finally:
                    parts._add(name, time.thread_time() - c0)

            return await to_thread(timed)

        def timed_writer(recorder: Recorder) -> None:
            c0 = time.thread_time()
            try:
                writer(recorder)
            finally:
                parts._add("recorder (DB writer)", time.thread_time() - c0)

        asyncio.to_thread = timed_to_thread
        Recorder._loop = timed_writer  # type: ignore[method-assign, assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.to_thread = self._to_thread
        Recorder._loop = self._writer  # type: ignore[method-assign]
        self.seconds = dict(sorted(self.seconds.items(), key=lambda kv: -kv[1]))


def measure(bed: Bed, kind: str, concurrency: int, profile: Path | None) -> Phase:
    """`measure_here` in a child process of its own (see `in_child`)."""
    bed.engine.dispose()  # no SQLite connection is shared with the child
    return Phase(**in_child(lambda: asdict(measure_here(bed, kind, concurrency, profile))))


def measure_here(bed: Bed, kind: str, concurrency: int, profile: Path | None) -> Phase:
    """One phase on a freshly started fleet whose Macs hold nothing; the fleet is stopped and wiped after."""
    bed.fleet.wipe()
    bed.fleet.start(bed.sc.hosts)
    run_id = bed.create_run() if kind == "deploy" else ""
    try:
        fleet0 = bed.fleet.cpu()
        reset_peak_rss()
        start_rss = _status("VmRSS")
        prof = cProfile.Profile(time.thread_time) if profile is not None else None  # CPU, not GIL waits
        cpu0, t0, main0 = cpu_self(), time.perf_counter(), time.thread_time()
        if prof is not None:
            prof.enable()
        if kind == "ceiling":
            durations, failed = asyncio.run(ceiling_push(bed, concurrency))
            trips: list[int] = []
            steps = {}
        else:
            with CpuParts() as parts:
                outcome = asyncio.run(drive(bed.engine, bed.settings, run_id, concurrency=concurrency))
            durations = [r.duration for r in outcome.results]
            trips = [r.round_trips for r in outcome.results]
            failed = [f"{d}: {step}: {et}: {msg}" for d, step, et, msg in outcome.failed]
            failed += [f"{k}: {v}" for k, v in outcome.counts.items() if k != "succeeded"]
            steps = step_medians(bed.engine, run_id)
        if prof is not None:
            prof.disable()
        wall, cpu, loop_cpu = time.perf_counter() - t0, cpu_self() - cpu0, time.thread_time() - main0
        by_part = {"event loop": loop_cpu, **(parts.seconds if kind == "deploy" else {})}
        by_part["other threads"] = max(0.0, cpu - sum(by_part.values()))
        fleet_cpu = bed.fleet.cpu() - fleet0
        peak = _status("VmHWM")
        copies: list[float] = []
        bare: list[float] = []
        sized: list[float] = []
        if kind == "ceiling":  # after the ceiling's figures are taken: not part of them
            copies, bare, sized, copy_failed = asyncio.run(stage_copy_cost(bed, concurrency))
            failed += copy_failed
        if prof is not None and profile is not None:
            prof.dump_stats(str(profile))
            pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(30)
    finally:
        received = bed.fleet.received()
        bed.fleet.stop()
        removed = bed.fleet.wipe()
    load = os.getloadavg()[0]
    print(f"  {kind:<7} c={concurrency:<4} wall {wall:7.2f} s  cpu {cpu:7.2f} s  "
          f"fleet cpu {fleet_cpu:7.2f} s  "
          f"peak RSS {peak / 2**20:6.1f} MiB (from {start_rss / 2**20:.0f})  "
          f"load {load:.1f}  fleet held {received / 1e6:.0f} MB "
          f"(removed {removed / 1e6:.0f} MB)" + (f"  FAILED {len(failed)}: {failed[:3]}" if failed else ""),
          flush=True)
    n = max(1, len(durations))
    print("          controller CPU by part (ms/dev): "
          + ", ".join(f"{k} {v * 1000 / n:.1f}" for k, v in by_part.items() if v * 1000 / n >= 0.05))
    if steps:
        print("          step medians (s): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))
    if copies:
        print(f"          install.sh stage copy: cp -p exec median {med(copies) * 1000:.1f} ms "
              f"(p95 {pct(copies, 0.95) * 1000:.1f}), bare exec {med(bare) * 1000:.1f} ms, "
              f"cp -p of a DMG-sized file {med(sized) * 1000:.1f} ms (p95 {pct(sized, 0.95) * 1000:.1f})")
    return Phase(wall, cpu, fleet_cpu, peak, durations, trips, failed, steps, copies, bare, sized, start_rss,
                 by_part)


def stage_copy_bytes(dmg: Path) -> int:
    """The bytes the stage copy adds on every Mac: the size of the pkg inside the image."""
    image = read_dmg(dmg.read_bytes(), verify=False)
    return sum(len(f.data) for f in image.files if f.data is not None and f.path.endswith(".pkg"))


def step_medians(engine: Engine, run_id: str) -> dict[str, float]:
    """Median recorded duration of each step over the run's devices, in workflow order."""
    with Session(engine) as s:
        rows = s.exec(select(StepRun.step, StepRun.duration_ms, StepRun.started_at)
                      .where(StepRun.job_id == DeviceJob.id, DeviceJob.run_id == run_id)
                      .order_by(col(StepRun.started_at))).all()
    by: dict[str, list[float]] = {}
    for step, ms, _ in rows:
        by.setdefault(step, []).append((ms or 0) / 1000)
    return {k: statistics.median(v) for k, v in by.items()}


# ------------------------------------------------------------------ report


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def report(label: str, samples: list[Sample], hosts: int, mb: int = 0, sftp_mib_s: float = float("nan"),
           rss_peak: Phase | None = None) -> list[str]:
    rows = []
    by_c: dict[int, list[Sample]] = {}
    for s in samples:
        by_c.setdefault(s.concurrency, []).append(s)
    for c, ss in by_c.items():
        d = [s.deploy for s in ss]
        ceil = [s.ceiling for s in ss]
        trips = [t for p in d for t in p.round_trips]
        ratio = med([s.ratio for s in ss])
        dwall, cwall = med([p.wall for p in d]), med([p.wall for p in ceil])
        rows.append(
            f"| {label} | {c} | {len(ss)} | {dwall:.2f} | {cwall:.2f} "
            f"| **{ratio:.2f}**{' ok' if ratio <= RATIO_TARGET else ' OVER'} "
            f"| {med([s.cpu_ratio for s in ss]):.2f} "
            f"| {med([med(p.durations) for p in d]):.2f} | {med([pct(p.durations, 0.95) for p in d]):.2f} "
            f"| {med([p.cpu / hosts * 1000 for p in d]):.1f} "
            f"| {med([p.cpu / hosts * 1000 for p in ceil]):.1f} "
            f"| {med([p.fleet_cpu / hosts * 1000 for p in d]):.1f} "
            f"| {med([p.fleet_cpu / hosts * 1000 for p in ceil]):.1f} "
            f"| {med(trips) if trips else float('nan'):.0f}/{max(trips) if trips else 0}"
            f"{' ok' if trips and max(trips) <= ROUND_TRIP_TARGET else ' OVER'} "
            f"| {max(p.peak_rss for p in d) / 2**20:.0f} | {max(p.peak_rss for p in ceil) / 2**20:.0f} "
            f"| {(med([med(p.stage_copy) - med(p.bare_exec) for p in ceil])) * 1000:.1f} "
            f"| {(med([med(p.sized_copy) - med(p.bare_exec) for p in ceil])) * 1000:.1f} "
            f"| {sum(len(p.failed) for p in d + ceil)} |"
            # the bare push's rate (every Mac's bytes over its wall time) beside one OpenSSH sftp client's
            f" {mb * MB * hosts / 2**20 / cwall:.1f} | {sftp_mib_s:.1f} "
            f"| {rss_peak.peak_rss / 2**20 if rss_peak else float('nan'):.0f} |"
        )
    return rows


SCALING_HEADER = [
    "| Macs x MB | conc | n | deploy wall s | ctl CPU ms/Mac | peak RSS MiB | failures |",
    "|---|---|---|---|---|---|---|",
]


def scaling_row(sc: Scenario, concurrency: int, phases: list[Phase]) -> str:
    return (f"| {sc.hosts} x {sc.dmg_mb} | {concurrency} | {len(phases)} "
            f"| {med([p.wall for p in phases]):.2f} "
            f"| {med([p.cpu / sc.hosts * 1000 for p in phases]):.1f} "
            f"| {max(p.peak_rss for p in phases) / 2**20:.0f} | {sum(len(p.failed) for p in phases)} |")


HEADER = [
    "| scenario | conc | n | deploy wall s | ceiling wall s | ratio | CPU ratio | dev median s | dev p95 s "
    "| ctl CPU ms/dev | ceiling ctl CPU ms/dev | fleet CPU ms/dev | ceiling fleet CPU ms/dev "
    "| exec RT med/max | peak RSS MiB | ceiling peak RSS MiB | stage copy ms/dev | DMG-sized copy ms/dev "
    "| failures | ceiling MiB/s | one OpenSSH sftp MiB/s | peak RSS MiB at c=RSS_C |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 Macs x 2 MB, one repeat")
    ap.add_argument("--scenario", nargs="+", default=None, metavar="HOSTSxMB",
                    help="e.g. 200x30 1000x5 (the default)")
    ap.add_argument("--repeat", type=int, default=None, help="repeats per scenario (default 3; --quick 1)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[50], help="devices at once (default 50)")
    ap.add_argument("--profile", type=Path, default=None,
                    help="cProfile the first deploy into this file, its ceiling beside it (.ceiling.prof)")
    ap.add_argument("--fleet-procs", type=int, default=None,
                    help="macsim processes the hosts are split between (default: one per fleet CPU)")
    ap.add_argument("--controller-cpus", type=cpu_list, default=None, metavar="LIST",
                    help="pin this process (the controller) to these CPUs, e.g. 0 or 0-1")
    ap.add_argument("--fleet-cpus", type=cpu_list, default=None, metavar="LIST",
                    help="pin the macsim processes to these CPUs, e.g. 2-7: on a machine with enough cores, "
                         "the simulated Macs then no longer take the controller's CPU, as on a real fleet")
    ap.add_argument("--fleet-profile", type=Path, default=None,
                    help="run each macsim process of the deploy phases under cProfile, writing into this dir")
    ap.add_argument("--workdir", type=Path, default=None, help="where fleet state goes (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="write every sample here")
    ap.add_argument("--rss-concurrency", type=int, default=200, metavar="C",
                    help="one more deploy per scenario at this concurrency for its peak RSS (0: none)")
    ap.add_argument("--scaling", type=lambda t: [int(x) for x in t.split(",")], default=None,
                    metavar="N,N,..",
                    help="the scaling table instead: deploys only, to N Macs x 5 MB each (e.g. 100,300,1000)")
    ap.add_argument("--transport", action="store_true",
                    help="only the single-stream figures per scenario (OpenSSH sftp, bounded writer, "
                         "asyncssh put)")
    ap.add_argument("--upload-block", type=float, default=None, metavar="MiB", help="[ssh] upload_block_size")
    ap.add_argument("--upload-window", type=float, default=None, metavar="MiB", help="[ssh] upload_window")
    ap.add_argument("--upload-budget", type=float, default=None, metavar="MiB", help="[ssh] upload_budget")
    args = ap.parse_args()
    upload = {k: int(v * 2**20) for k, v in (("upload_block_size", args.upload_block),
                                               ("upload_window", args.upload_window),
                                               ("upload_budget", args.upload_budget)) if v is not None}
    if args.quick:
        scenarios = [Scenario(20, 2)]
    elif args.scaling:
        scenarios = [Scenario(n, 5) for n in args.scaling]
    else:
        specs = args.scenario or ["200x30", "1000x5"]
        scenarios = [Scenario(int(h), int(m)) for h, m in (s.lower().rstrip("mb").split("x") for s in specs)]
    repeat = args.repeat or (1 if args.quick else 3)
    if args.controller_cpus:
        os.sched_setaffinity(0, args.controller_cpus)
    fleet_procs = args.fleet_procs or len(args.fleet_cpus or os.sched_getaffinity(0))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    root = args.workdir or Path(tempfile.mkdtemp(prefix="macfleet-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    mine = sorted(os.sched_getaffinity(0))
    print(f"controller pid {os.getpid()}, {os.cpu_count()} CPUs (controller on {mine}, fleet: {fleet_procs} "
          f"processes on {sorted(args.fleet_cpus or mine)}), work dir {root}")
    table = [*HEADER]
    copy_bytes: list[str] = []
    table[0] = table[0].replace("RSS_C", str(args.rss_concurrency))
    scaling: list[str] = []
    dump: list[dict[str, Any]] = []
    try:
        for sc0 in scenarios:
            sc = fit_to_disk(sc0, root)
            base = root / sc.label
            base.mkdir(parents=True, exist_ok=True)
            bed = build_bed(sc, base, upload)
            bed.fleet.count = fleet_procs
            bed.fleet.cpus = args.fleet_cpus
            samples: list[Sample] = []
            if args.transport or args.scaling:
                try:
                    if args.transport:
                        transport_streams(bed)
                    else:
                        c = args.concurrency[0]
                        phases = []
                        for r in range(repeat):
                            print(f"[{sc.label}] scaling, repeat {r + 1}/{repeat}, concurrency {c}",
                                  flush=True)
                            phases.append(measure(bed, "deploy", c, None))
                        scaling.append(scaling_row(sc, c, phases))
                        dump += [{"scenario": sc.label, "concurrency": c, "deploy": p.__dict__}
                                 for p in phases]
                        print("\n".join([*SCALING_HEADER, *scaling]), flush=True)
                finally:
                    bed.fleet.stop()
                    bed.engine.dispose()
                    shutil.rmtree(base, ignore_errors=True)
                continue
            sftp_rate = transport_streams(bed)[0].mib_s
            try:
                for r in range(repeat):
                    for c in args.concurrency:
                        print(f"[{sc.label}] repeat {r + 1}/{repeat}, concurrency {c}", flush=True)
                        first = r == 0 and c == args.concurrency[0]
                        prof = args.profile if first else None
                        ceiling_prof = None if prof is None else prof.with_suffix(".ceiling.prof")
                        ceiling = measure(bed, "ceiling", c, ceiling_prof)
                        bed.fleet.profile_dir = args.fleet_profile if first else None
                        deploy = measure(bed, "deploy", c, prof)
                        bed.fleet.profile_dir = None
                        samples.append(Sample(c, ceiling, deploy))
                        print(f"  ratio {samples[-1].ratio:.2f}", flush=True)
                rss_peak = None
                if args.rss_concurrency > sc.hosts:
                    print(f"[{sc.label}] fewer Macs than {args.rss_concurrency}: no peak RSS at that "
                          "concurrency")
                elif args.rss_concurrency:
                    print(f"[{sc.label}] peak RSS at concurrency {args.rss_concurrency}", flush=True)
                    rss_peak = measure(bed, "deploy", args.rss_concurrency, None)
            finally:
                bed.fleet.stop()
                bed.engine.dispose()
            table += report(sc.label, samples, sc.hosts, sc.dmg_mb, sftp_rate, rss_peak)
            copy_bytes.append(f"{sc.label}: {stage_copy_bytes(bed.dmg) / 1e6:.2f} MB")
            dump += [{"scenario": sc.label, "concurrency": s.concurrency, "ratio": s.ratio,
                      "cpu_ratio": s.cpu_ratio, "ceiling": s.ceiling.__dict__, "deploy": s.deploy.__dict__}
                     for s in samples]
            shutil.rmtree(base, ignore_errors=True)
            print("\n".join(table), flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(dump, indent=1))
    print()
    if args.scaling:
        print("\n".join([*SCALING_HEADER, *scaling]))
        return 0
    if args.transport:
        return 0
    print("\n".join(table))
    print(f"targets: deploy/ceiling <= {RATIO_TARGET}; exec round trips <= {ROUND_TRIP_TARGET} per device. "
          "CPU ms/dev = controller CPU seconds / devices; fleet CPU = the macsim processes; "
          "CPU ratio = the deploy's (controller + fleet) CPU over the ceiling's. "
          "Stage copy ms/dev = the install.sh method's `cp -p` of the pkg into the stage dir, one exec per "
          "Mac, minus a bare exec (median); DMG-sized copy = the same for a file the DMG's size, what 1E's "
          "pkg is (macsim's pkg is small: its images are padded outside it); the bytes the macsim pkg copy "
          "writes per Mac: " + "; ".join(copy_bytes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
