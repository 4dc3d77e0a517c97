"""`orchestrate demo`: the whole controller against a simulated fleet, in one process, on SQLite.

It starts a macsim fleet on 127.0.0.1 (Intel and Apple-silicon Macs, one whose certificate carries its host
name in the wrong case), writes the artifacts a real admin would bring (the 1E Client DMG, a lab CA and a
Switch CA, one PFX per Mac), and then runs the same `orchestrate` commands an operator types, printing each
one before its output. Finally it reads every Mac's facts over real SSH (strict host keys, one round trip a
Mac). This is the only controller module that imports macsim (DESIGN.md: only the demo command does).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click
import yaml

from orchestrator.console import Console

DEMO_VERSION = "8.0.2.5"
DEMO_SWITCH = "tachyon.demo.test:4000"
DEMO_BACKGROUND_URL = "https://tachyon.demo.test:443/Background/"
WRONG_CASE_HOST = 2  # index of the Mac whose PFX carries its host name in the wrong case


@dataclass(frozen=True)
class DemoHost:
    name: str
    arch: str
    rosetta: bool


def demo_hosts(count: int) -> list[DemoHost]:
    """A mixed fleet: Apple silicon with Rosetta, Intel, Apple silicon without Rosetta, in turn."""
    kinds = [("arm64", True), ("x86_64", False), ("arm64", False)]
    out = []
    for i in range(count):
        arch, rosetta = kinds[i % len(kinds)]
        prefix = "mbp" if arch == "arm64" else "imac"
        out.append(DemoHost(name=f"lab-{prefix}-{i + 1:02d}", arch=arch, rosetta=rosetta))
    return out


def fleet_spec(hosts: Sequence[DemoHost], state_dir: Path) -> dict[str, object]:
    return {
        "state_dir": str(state_dir),
        "hosts": [
            {"name": h.name, "arch": h.arch, "rosetta": h.rosetta, "macos_version": ("14.6.1", "15.1")[i % 2]}
            for i, h in enumerate(hosts)
        ],
    }


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Cli:
    """Runs `orchestrate` subcommands in this process, shown as the operator would type them."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, *args: str, env: dict[str, str] | None = None, expect_fail: bool = False) -> int:
        from orchestrator.cli import _register, app
        from orchestrator.cli import context as cli_context

        _register()

        self.console.info("")
        self.console.info("$ orchestrate " + shlex.join(args))
        with _environment(env or {}):
            cli_context.settings.cache_clear()
            cli_context.engine.cache_clear()
            try:
                # standalone_mode=False: click returns the exit code of typer.Exit instead of raising.
                rv = app(list(args), standalone_mode=False)
                code = rv if isinstance(rv, int) else 0
            except SystemExit as e:
                code = int(e.code or 0)
            except click.ClickException as e:  # usage errors: shown as the CLI shows them
                e.show()
                code = e.exit_code
        if code and not expect_fail:
            raise RuntimeError(f"demo step failed (exit {code}): orchestrate {shlex.join(args)}")
        return code


async def _facts(fleet: object, client_key: Path, names: Sequence[str]) -> dict[str, dict[str, str]]:
    """One round trip a Mac over the workers' SSH transport, host keys pinned from the fleet."""
    from workers.ssh import HostKeyPolicy, SshAuth, SshTarget, TransportError, connect

    lines = [
        ["hostname"],
        ["uname", "-m"],
        ["sw_vers", "-productVersion"],
        ["sudo", "-n", "true"],
        ["arch", "-x86_64", "/usr/bin/true"],  # succeeds on Intel, and on Apple silicon only with Rosetta 2
    ]

    async def one(name: str) -> tuple[str, dict[str, str]]:
        host = fleet.hosts[name]  # type: ignore[attr-defined]
        target = SshTarget(host=host.address, port=host.port, username=host.spec.user)
        try:
            policy = HostKeyPolicy.pin([host.host_key_public])
            async with await connect(target, policy, SshAuth(key_files=(client_key,))) as conn:
                res = await conn.run_script(lines, stop_on_error=False)
        except TransportError as e:
            return name, {"error": str(e)}
        out = [s.stdout.decode().strip() for s in res.steps]
        return name, {
            "hostname": out[0],
            "arch": out[1],
            "macos": out[2],
            "sudo": "ok" if res.steps[3].exit_status == 0 else "fails",
            "rosetta": "-" if out[1] == "x86_64" else ("yes" if res.steps[4].exit_status == 0 else "missing"),
        }

    return dict(await asyncio.gather(*(one(n) for n in names)))


async def run_demo(console: Console, host_count: int, workdir: Path | None) -> int:
    """Run the demo; returns the process exit code (0 when every step behaved as expected)."""
    from macsim.artifacts.certs import write_cert_artifacts
    from macsim.artifacts.dmg import write_dmg
    from macsim.fleet import Fleet

    base = workdir or Path(tempfile.mkdtemp(prefix="macfleet-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    data_dir = base / "data"
    hosts = demo_hosts(host_count)
    spec_path = base / "fleet.yaml"
    spec_path.write_text(yaml.safe_dump(fleet_spec(hosts, base / "fleet")))
    console.info(f"macfleet demo: {len(hosts)} simulated Macs, SQLite and artifacts in {base}")

    art = base / "artifacts"
    art.mkdir(exist_ok=True)
    dmg = write_dmg(art, DEMO_VERSION)
    wrong = hosts[WRONG_CASE_HOST].name if len(hosts) > WRONG_CASE_HOST else None
    certs = write_cert_artifacts(art, {h.name: f"{h.name}.local" for h in hosts}, bad_host=wrong)
    env = {
        "ORCHESTRATE_DATA_DIR": str(data_dir),
        "ORCHESTRATE_DATABASE_URL": f"sqlite:///{data_dir / 'macfleet.db'}",
        "ORCHESTRATE_CONFIG": str(base / "orchestrate.toml"),
    }
    (base / "orchestrate.toml").write_text(
        f'[deploy]\nswitch = "{DEMO_SWITCH}"\nbackground_url = "{DEMO_BACKGROUND_URL}"\n'
    )
    cli = _Cli(console)

    async with Fleet.start(spec_path) as fleet:
        known_hosts = fleet.write_known_hosts(base / "known_hosts")
        env["ORCHESTRATE_SSH__KNOWN_HOSTS"] = str(known_hosts)
        inventory = {
            "groups": [{"name": "lab"}, {"name": "apple-silicon"}, {"name": "intel"}],
            "hosts": [
                {
                    "name": h.name,
                    "address": fleet.hosts[h.name].address,
                    "port": fleet.hosts[h.name].port,
                    "user": fleet.hosts[h.name].spec.user,
                    "auth": {"key": str(fleet.client_key_path)},
                    "expected_hostname": fleet.hosts[h.name].hostname,
                    "groups": ["lab", "apple-silicon" if h.arch == "arm64" else "intel"],
                }
                for h in hosts
            ],
        }
        inv_path = base / "inventory.yaml"
        inv_path.write_text(yaml.safe_dump(inventory, sort_keys=False))

        with _environment(env):
            cli("secrets", "init")
            cli("inventory", "import", str(inv_path))
            cli("inventory", "list", "--group", "lab")
            cli("certs", "ca", "add", str(certs.lab_ca.pem), str(certs.switch_ca.pem))
            for h in hosts:
                pfx = certs.host_pfx[h.name]
                if h.name == wrong:
                    pfx = certs.bad_pfx["wrong-case"]
                pw_env = {"DEMO_PFX_PASSWORD": certs.password_for(pfx)}
                code = cli("certs", "add", str(pfx), "--password-env", "DEMO_PFX_PASSWORD",
                           env=pw_env, expect_fail=h.name == wrong)
                if h.name == wrong and code == 0:
                    console.error(f"the wrong-case certificate for {h.name} was accepted; it must not be")
                    return 1
            cli("artifact", "add", str(dmg))
            cli("certs", "check", "--group", "lab", expect_fail=wrong is not None)

        console.info("")
        console.info("Facts over SSH (strict host keys, one round trip a Mac):")
        facts = await _facts(fleet, fleet.client_key_path, [h.name for h in hosts])
        rows = []
        for h in hosts:
            f = facts[h.name]
            keys = ("hostname", "arch", "rosetta", "macos", "sudo", "error")
            rows.append([h.name, *(f.get(k, "") for k in keys)])
        console.table("fleet", ["device", "hostname", "arch", "rosetta", "macOS", "sudo -n", "error"], rows)
        failed = [n for n, f in facts.items() if "error" in f]

        with _environment(env):
            problems = await _deploy_steps(cli, console, data_dir, [h.name for h in hosts], wrong)
    console.info("")
    if wrong:
        console.info(f"{wrong}: its PFX says {_cn_of_wrong_case(certs)!r}; the Mac is "
                     f"{certs.host_names[wrong]!r}. It was refused before any byte was sent.")
    console.info(f"Everything the demo wrote is in {base} (state database: {data_dir / 'macfleet.db'}).")
    for p in problems:
        console.error(p)
    if not failed and not problems:
        console.success("as expected: every Mac but the deliberately broken one is connected")
    return 1 if failed or problems else 0


async def _deploy_steps(
    cli: _Cli, console: Console, data_dir: Path, names: Sequence[str], wrong: str | None
) -> list[str]:
    """Deploy, show status and the run, deploy again; returns what did not go as expected (empty: all did).

    The commands run in a worker thread: the simulated Macs are served by this event loop, which must keep
    running while the CLI drives its own."""
    deploy_code = await asyncio.to_thread(cli, "deploy", "--group", "lab", expect_fail=True)
    await asyncio.to_thread(cli, "status", "--group", "lab")
    first = _latest_run(data_dir)
    await asyncio.to_thread(cli, "runs", "show", first[:12])
    console.info("")
    console.info("Deploying again: every step finds the Mac already right, so nothing changes.")
    again_code = await asyncio.to_thread(cli, "deploy", "--group", "lab", expect_fail=True)
    second = _latest_run(data_dir)
    expected_code = 1 if wrong else 0
    problems = [
        f"`orchestrate deploy` exited {code}, expected {expected_code}"
        for code in (deploy_code, again_code)
        if code != expected_code
    ]
    problems += check_outcome(data_dir, names, wrong, first, second)
    if not problems:
        console.info(f"re-run {second[:12]} changed nothing on any Mac: every step was ok or a no-op")
    return problems


def _latest_run(data_dir: Path) -> str:
    from sqlmodel import Session, col, select

    from orchestrator.state.db import create_db_engine
    from orchestrator.state.models import Run

    engine = create_db_engine(f"sqlite:///{data_dir / 'macfleet.db'}")
    try:
        with Session(engine) as s:
            run = s.exec(select(Run).order_by(col(Run.created_at).desc())).first()
            if run is None:
                raise RuntimeError("the deploy recorded no run")
            return run.id
    finally:
        engine.dispose()


def check_outcome(
    data_dir: Path, names: Sequence[str], wrong: str | None, first: str, second: str
) -> list[str]:
    """What the database says against what the demo expects: every Mac but `wrong` installed at
    DEMO_VERSION and connected; `wrong` refused as HostnameMismatch before any connection; the second run
    changed nothing."""
    from sqlmodel import Session, select

    from orchestrator.state.db import create_db_engine
    from orchestrator.state.models import Device, DeviceJob, StepRun

    engine = create_db_engine(f"sqlite:///{data_dir / 'macfleet.db'}")
    problems: list[str] = []
    try:
        with Session(engine) as s:
            devices = {d.name: d for d in s.exec(select(Device)).all()}
            jobs = {
                (j.run_id, device_name): j
                for j, device_name in s.exec(
                    select(DeviceJob, Device.name).where(DeviceJob.device_id == Device.id)
                ).all()
            }
            for name in names:
                d = devices[name]
                job = jobs.get((first, name))
                if name == wrong:
                    if job is None or job.error_type != "HostnameMismatch":
                        got = job.error_type or job.status if job else "no job"
                        problems.append(f"{name}: expected a HostnameMismatch refusal, got {got}")
                    elif s.exec(select(StepRun).where(StepRun.job_id == job.id)).first() is not None:
                        problems.append(f"{name}: was refused but steps ran on it")
                elif not (d.connected and d.installed_version == DEMO_VERSION):
                    why = d.last_error or d.last_outcome
                    problems.append(f"{name}: not connected at {DEMO_VERSION} ({why})")
            changed = s.exec(
                select(StepRun.step, Device.name)
                .where(StepRun.job_id == DeviceJob.id, DeviceJob.run_id == second)
                .where(DeviceJob.device_id == Device.id, StepRun.status == "changed")
            ).all()
            problems += [f"{name}: the re-run changed step {step}" for step, name in changed]
    finally:
        engine.dispose()
    return problems


def _cn_of_wrong_case(certs: object) -> str:
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    pfx: Path = certs.bad_pfx["wrong-case"]  # type: ignore[attr-defined]
    loaded = pkcs12.load_pkcs12(pfx.read_bytes(), certs.password_for(pfx).encode())  # type: ignore[attr-defined]
    assert loaded.cert is not None
    return str(loaded.cert.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
