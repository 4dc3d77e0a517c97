"""Each macsim fault knob through the local driver: a typed outcome, recorded on the job, on the failed step's
StepRun and on the device row, in bounded time, with the always-steps (unmount, cleanup) run where they
must. SQLite only: the database plays no part in these faults (test_runner_install covers PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

import workers.runner.inputs as inputs_mod
from orchestrator.secrets import SecretBox, store_secret
from orchestrator.state.models import DeviceLock, HostKeyPin, JobStatus, utcnow
from tests.workers.lab import VERSION, Lab, assert_awaiting_trust, assert_failed_at, lab, mac_files
from workers.events import StepFinished
from workers.local import drive
from workers.runner import device
from workers.runner import job as job_mod
from workers.runner import push as push_mod
from workers.runner.link import Link
from workers.ssh import Connection

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

SSH: dict[str, Any] = {
    "connect_timeout": 2.0,
    "command_timeout": 5.0,
    "keepalive_interval": 1.0,
    "keepalive_count_max": 2,
}
MAC = "mac-1"


def _host(**spec: Any) -> list[dict[str, Any]]:
    return [{"name": MAC, **spec}]


def _private_dirs(L: Lab) -> list[str]:
    return [f for f in mac_files(L, MAC, "/private/tmp") if "/macfleet-" in f]


def _no_pfx_left(L: Lab) -> None:
    left = [f for f in mac_files(L, MAC) if f.endswith(".p12") or ".part-" in f]
    assert left == [] and _private_dirs(L) == [], (left, _private_dirs(L))


async def test_refused_connections_are_unreachable_at_connect(tmp_path: Path, engine: Engine) -> None:
    async with lab(tmp_path, engine, _host(faults={"refuse_connections": True}), ssh=SSH) as L:
        run = L.create_run()
        outcome = await drive(L.engine, L.settings, run)
        assert outcome.status == "failed"
        msg = assert_failed_at(L, run, MAC, "connect", "Unreachable")
        assert "refused" in msg
        assert list(L.steps(run, MAC)) == ["connect"]  # nothing else was attempted
        assert L.commands(MAC) == []


async def test_silent_server_fails_within_the_connect_timeout(tmp_path: Path, engine: Engine) -> None:
    async with lab(tmp_path, engine, _host(faults={"hang_after_accept": True}), ssh=SSH) as L:
        run = L.create_run()
        t0 = time.monotonic()
        await drive(L.engine, L.settings, run)
        took = time.monotonic() - t0
        job = L.jobs(run)[MAC]
        assert job.error_type in ("Unreachable", "ConnectionLost"), job.error_message
        assert_failed_at(L, run, MAC, "connect", str(job.error_type))
        assert took < SSH["connect_timeout"] + 3.0, took
        assert L.commands(MAC) == []


async def test_hanging_installer_times_out_at_install_then_unmounts_and_cleans_up(
    tmp_path: Path, engine: Engine
) -> None:
    ssh = {**SSH, "command_timeout": 1.0}  # an exec's limit is this times its number of commands
    async with lab(tmp_path, engine, _host(faults={"hang_tools": ["installer"]}), ssh=ssh) as L:
        run = L.create_run(method="pkg")  # `installer` runs as its own command
        t0 = time.monotonic()
        outcome = await drive(L.engine, L.settings, run)
        took = time.monotonic() - t0
        msg = assert_failed_at(L, run, MAC, "install", "CommandTimeout")
        assert "installer" in msg
        steps = L.steps(run, MAC)
        assert steps["mount"].status == "changed"
        assert steps["unmount"].status == "changed", (steps["unmount"].status, steps["unmount"].noop_reason)
        assert steps["cleanup"].status == "changed"
        for later in ("identity", "start", "verify"):
            assert steps[later].status == "skipped"
        assert L.fleet.hosts[MAC].mac.state.mounts == {}
        _no_pfx_left(L)
        assert outcome.results[0].error_type == "CommandTimeout"
        assert took < 30, took


async def test_hanging_installer_under_install_sh_times_out(tmp_path: Path, engine: Engine) -> None:
    ssh = {**SSH, "command_timeout": 1.5}
    async with lab(tmp_path, engine, _host(faults={"hang_tools": ["installer"]}), ssh=ssh) as L:
        run = L.create_run()  # method install.sh
        await drive(L.engine, L.settings, run)
        assert_failed_at(L, run, MAC, "install", "CommandTimeout")


async def test_upload_dropped_once_is_retried_on_a_new_connection(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with lab(tmp_path, engine, _host(faults={"drop_after_sftp_bytes": 200_000}), ssh=SSH,
                   dmg_size=1_000_000) as L:
        reconnects: list[bool] = []
        after_push: list[list[str]] = []
        original_reconnect = Link.reconnect
        original_push = push_mod.push

        async def reconnect(self: Link) -> Connection:
            if self.conn is not None and self.conn.is_closed:  # the drop: the link is fine again
                reconnects.append(True)
                L.fleet.set_faults(MAC, drop_after_sftp_bytes=None)
            return await original_reconnect(self)

        async def push(*args: Any) -> None:
            await original_push(*args)
            after_push.append(_private_dirs(L))

        monkeypatch.setattr(Link, "reconnect", reconnect)
        monkeypatch.setattr(device, "push", push)
        run = L.create_run()
        outcome = await drive(L.engine, L.settings, run)
        assert outcome.status == "succeeded", outcome.failed
        assert reconnects == [True]
        assert L.steps(run, MAC)["push"].status == "changed"
        [files] = after_push
        assert files and not [f for f in files if ".part-" in f], files
        assert any(f.endswith(".dmg") for f in files) and any(f.endswith("client.p12") for f in files)
        dev = L.device(MAC)
        assert (dev.connected, dev.last_error) == (True, None)
        _no_pfx_left(L)


async def test_upload_dropped_on_every_connection_fails_at_push(tmp_path: Path, engine: Engine) -> None:
    async with lab(tmp_path, engine, _host(faults={"drop_after_sftp_bytes": 200_000}), ssh=SSH,
                   dmg_size=1_000_000) as L:
        run = L.create_run()
        await drive(L.engine, L.settings, run)
        assert_failed_at(L, run, MAC, "push", "ConnectionLost")
        steps = L.steps(run, MAC)
        assert steps["cleanup"].status == "changed", (steps["cleanup"].status, steps["cleanup"].output_tail)
        _no_pfx_left(L)


async def test_changed_host_key_stops_the_device_before_anything_runs(tmp_path: Path, engine: Engine) -> None:
    tofu = {**SSH, "known_hosts": None, "trust_on_first_use": True}
    async with lab(tmp_path, engine, _host(), ssh=tofu) as L:
        first = L.create_run()
        assert (await drive(L.engine, L.settings, first)).status == "succeeded"
        with Session(L.engine) as s:
            pins = s.exec(select(HostKeyPin)).all()
            assert [p.public_key for p in pins] == [L.fleet.hosts[MAC].host_key_public]
        L.fleet.rotate_host_key(MAC)
        mark = len(L.commands(MAC))
        run = L.create_run()
        await drive(L.engine, L.settings, run)
        msg = assert_failed_at(L, run, MAC, "connect", "HostKeyMismatch")
        assert "changed" in msg.lower() or "mismatch" in msg.lower() or "differ" in msg.lower(), msg
        assert L.commands(MAC, since=mark) == []
        assert list(L.steps(run, MAC)) == ["connect"]


async def test_wrong_sudo_password_fails_at_facts_within_seconds(tmp_path: Path, engine: Engine) -> None:
    spec = _host(sudo="password", password="the-right-Pw-42")
    async with lab(tmp_path, engine, spec, ssh=SSH, vars_for={MAC: {"sudo_password": "mac-1-sudo"}}) as L:
        L.store_secret("mac-1-sudo", "sudo-password", b"not-the-Pw-17")
        run = L.create_run()
        t0 = time.monotonic()
        await drive(L.engine, L.settings, run)
        took = time.monotonic() - t0
        msg = assert_failed_at(L, run, MAC, "facts", "SudoAuthFailed")
        assert "not-the-Pw-17" not in msg
        assert took < 5.0, took
        assert L.fleet.hosts[MAC].mac.fs.exists("/Library/Application Support/1E/Client/1E.Client") is False


async def test_right_sudo_password_installs(tmp_path: Path, engine: Engine) -> None:
    spec = _host(sudo="password", password="the-right-Pw-42")
    async with lab(tmp_path, engine, spec, ssh=SSH, vars_for={MAC: {"sudo_password": "mac-1-sudo"}}) as L:
        L.store_secret("mac-1-sudo", "sudo-password", b"the-right-Pw-42")
        run = L.create_run()
        outcome = await drive(L.engine, L.settings, run)
        assert outcome.status == "succeeded", outcome.failed
        assert L.device(MAC).connected is True


async def test_refused_trust_points_to_a_configuration_profile(tmp_path: Path, engine: Engine) -> None:
    async with lab(tmp_path, engine, _host(faults={"trust_refused": True}), ssh=SSH) as L:
        run = L.create_run()
        await drive(L.engine, L.settings, run)
        msg = assert_awaiting_trust(L, run, MAC, "TrustInteractionNotAllowed")
        assert "orchestrate certs profile" in msg
        steps = L.steps(run, MAC)  # everything else is done; only the connection waits for the trust
        assert all(steps[s].status == "changed" for s in ("mount", "install", "identity", "start"))
        assert steps["verify"].status == "skipped" and steps["cleanup"].status == "changed"
        _no_pfx_left(L)


async def test_too_little_space_refuses_at_preflight_and_pushes_nothing(tmp_path: Path, engine: Engine) -> None:
    async with lab(tmp_path, engine, _host(free_space_mb=1), ssh=SSH) as L:
        run = L.create_run()
        await drive(L.engine, L.settings, run)
        msg = assert_failed_at(L, run, MAC, "preflight", "InsufficientSpace")
        assert "free space" in msg
        assert L.steps(run, MAC)["push"].status == "skipped"
        assert not any(c.startswith("shasum") for c in L.commands(MAC))  # no upload's hash check
        _no_pfx_left(L)


async def test_refusal_before_anything_changed_runs_no_undo_steps(tmp_path: Path, engine: Engine) -> None:
    async with lab(tmp_path, engine, _host(free_space_mb=1), ssh=SSH) as L:
        run = L.create_run()
        outcome = await drive(L.engine, L.settings, run)
        steps = L.steps(run, MAC)
        assert steps["unmount"].status == "skipped", steps["unmount"].output_tail
        assert steps["cleanup"].status == "skipped"
        assert outcome.results[0].mutating_commands == 0


async def test_failing_hdiutil_is_a_typed_failure_at_mount_and_cleanup_runs(
    tmp_path: Path, engine: Engine
) -> None:
    async with lab(tmp_path, engine, _host(faults={"fail_tools": {"hdiutil": 1}}), ssh=SSH) as L:
        run = L.create_run()
        await drive(L.engine, L.settings, run)
        assert_failed_at(L, run, MAC, "mount", "HdiutilFailed")
        rec = L.steps(run, MAC)["mount"]
        assert rec.exit_code == 1 and "simulated failure" in (rec.output_tail or "")
        steps = L.steps(run, MAC)
        assert all(steps[s].status == "skipped" for s in ("install", "identity", "start", "verify"))
        assert steps["cleanup"].status == "changed"
        assert L.jobs(run)[MAC].status == JobStatus.FAILED
        _no_pfx_left(L)


async def test_canary_secrets_appear_nowhere_on_success_and_failure_paths(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The stored PFX passwords, the one-time passwords the runner makes and a stored sudo password reach no
    Mac command log, database row, event, log record, output or error message — with a Mac that succeeds,
    one that hangs at install (timeout path), one that refuses trust, one on a sudo password."""
    otps: list[str] = []
    made = inputs_mod.one_time_password

    def capture(length: int = 32) -> bytes:
        value = made(length)
        otps.append(value.decode("ascii"))
        return value

    monkeypatch.setattr(inputs_mod, "one_time_password", capture)
    caplog.set_level(logging.DEBUG)
    sudo_pw = "Sudo-canary-Pw-8841"
    hosts = [
        {"name": "mac-ok"},
        {"name": "mac-hang", "faults": {"hang_tools": ["installer"]}},
        {"name": "mac-notrust", "faults": {"trust_refused": True}},
        {"name": "mac-sudo", "sudo": "password", "password": sudo_pw},
    ]
    ssh = {**SSH, "command_timeout": 1.0}
    async with lab(tmp_path, engine, hosts, ssh=ssh, vars_for={"mac-sudo": {"sudo_password": "sudo-pw"}}) as L:
        L.store_secret("sudo-pw", "sudo-password", sudo_pw.encode())
        events: list[Any] = []
        run = L.create_run(method="pkg")
        outcome = await drive(L.engine, L.settings, run, on_event=events.append)
        assert outcome.counts == {"succeeded": 2, "failed": 1, "awaiting_trust": 1}, outcome.failed
        assert_failed_at(L, run, "mac-hang", "install", "CommandTimeout")
        assert_awaiting_trust(L, run, "mac-notrust", "TrustInteractionNotAllowed")

        stored = [L.certs.password_for(p) for p in [*L.certs.host_pfx.values(), *L.certs.bad_pfx.values()]]
        assert len(otps) == 4, otps  # one per Mac: each got as far as the push
        canaries = [*stored, *otps, sudo_pw]
        assert all(len(c) >= 12 for c in canaries)

        places: dict[str, str] = {}
        for name, host in L.fleet.hosts.items():
            log = host.state_dir / "commands.jsonl"
            places[f"command log of {name}"] = log.read_text() if log.exists() else ""
        with L.engine.connect() as db:
            for table in SQLModel.metadata.sorted_tables:
                for row in db.execute(table.select()).all():
                    for column, value in zip(table.columns.keys(), row, strict=True):
                        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                        places[f"{table.name}.{column}"] = places.get(f"{table.name}.{column}", "") + text
        places["events"] = "\n".join(repr(e) for e in events)
        places["log records"] = caplog.text + "\n".join(
            f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
        captured = capsys.readouterr()
        places["stdout/stderr"] = captured.out + captured.err
        places["results and errors"] = repr(outcome) + "\n".join(
            f"{j.error_type} {j.error_message}" for j in L.jobs(run).values())
        # the search means something: each kind of place holds text
        assert events and caplog.records and "security -i" in places["command log of mac-ok"]
        assert any(k.endswith(".output_tail") and "CommandTimeout" not in v for k, v in places.items())
        leaks = [(where, i) for where, text in places.items() for i, c in enumerate(canaries) if c in text]
        assert leaks == [], leaks


async def test_stop_leaves_pending_jobs_pending_interrupts_running_ones_cleanly_and_resume_finishes(
    tmp_path: Path, engine: Engine
) -> None:
    hosts = [{"name": f"mac-{i}"} for i in range(4)]
    async with lab(tmp_path, engine, hosts, ssh=SSH) as L:
        run = L.create_run()
        stop = asyncio.Event()

        def on_event(e: Any) -> None:  # Ctrl-C as soon as a Mac holds its pushed files
            if isinstance(e, StepFinished) and e.step == "push":
                stop.set()

        first = await drive(L.engine, L.settings, run, concurrency=2, on_event=on_event, stop=stop)
        assert first.status == "halted"
        jobs = L.jobs(run)
        statuses = sorted(j.status for j in jobs.values())
        assert statuses == ["interrupted", "interrupted", "pending", "pending"], statuses
        for name, job in jobs.items():
            if job.status == "pending":
                assert L.steps(run, name) == {} and L.commands(name) == [], name
                continue
            steps = L.steps(run, name)
            assert steps["push"].status == "changed" and steps["cleanup"].status == "changed", name
            assert steps["verify"].status == "skipped", name
            assert [f for f in mac_files(L, name) if f.endswith(".p12") or "/macfleet-" in f] == [], name

        second = await drive(L.engine, L.settings, run, concurrency=2)
        assert second.status == "succeeded", second.failed
        assert {j.status for j in L.jobs(run).values()} == {"succeeded"}
        for h in hosts:
            dev = L.device(h["name"])
            assert (dev.connected, dev.installed_version) == (True, VERSION), h["name"]


async def test_missing_sudo_password_secret_fails_only_that_device(tmp_path: Path, engine: Engine) -> None:
    # inventory/FORMAT.md: a sudo_password naming no stored secret fails that device's job, naming the secret
    hosts = [*_host(sudo="password", password="the-right-Pw-42"), {"name": "mac-2", "arch": "x86_64"}]
    async with lab(tmp_path, engine, hosts, ssh=SSH, vars_for={MAC: {"sudo_password": "mac-1-sudo"}}) as L:
        run = L.create_run()
        outcome = await drive(L.engine, L.settings, run)
        jobs = L.jobs(run)
        assert jobs[MAC].status == JobStatus.FAILED and jobs[MAC].error_type == "SudoPasswordMissing"
        assert "'mac-1-sudo'" in (jobs[MAC].error_message or "")
        assert "--kind sudo-password" in (jobs[MAC].error_message or "")
        assert jobs["mac-2"].status == JobStatus.SUCCEEDED, outcome.failed
        assert L.commands(MAC) == []


async def test_an_unreadable_secret_fails_only_that_device_and_lets_it_go(tmp_path: Path, engine: Engine) -> None:
    """A stored secret this key cannot decrypt (damaged, or another key's) fails the job of the device
    that needs it, saying which secret, releases its lease and lock, and the other devices go on."""
    hosts = [*_host(sudo="password", password="the-right-Pw-42"), {"name": "mac-2", "arch": "x86_64"}]
    async with lab(tmp_path, engine, hosts, ssh=SSH, vars_for={MAC: {"sudo_password": "mac-1-sudo"}}) as L:
        with Session(L.engine) as s:
            box = SecretBox.from_settings(L.settings)
            store_secret(s, box, "mac-1-sudo", "sudo-password", b"the-right-Pw-42").ciphertext = b"damaged"
            s.commit()
        run = L.create_run()
        outcome = await drive(L.engine, L.settings, run)
        jobs = L.jobs(run)
        assert jobs[MAC].status == JobStatus.FAILED and jobs[MAC].error_type == "SecretCorrupt", outcome.failed
        assert "'mac-1-sudo'" in (jobs[MAC].error_message or "")
        assert jobs["mac-2"].status == JobStatus.SUCCEEDED, outcome.failed
        assert L.commands(MAC) == []
        with Session(L.engine) as s:
            assert s.exec(select(DeviceLock)).all() == []
            assert all(j.lease_expires_at is None or j.lease_expires_at < utcnow() for j in jobs.values())


async def test_a_crash_in_one_devices_job_fails_that_job_and_the_run_goes_on(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug (an unexpected exception) in one device's job is recorded on that job as WorkerError, its
    lease and lock are let go, and the other devices' jobs finish: the local run does not end with it."""

    class Buggy(device.DeviceRunner):
        async def run(self) -> device.DeviceResult:
            if self.w.name == MAC:
                raise RuntimeError("a bug in working on mac-1")
            return await super().run()

    monkeypatch.setattr(job_mod, "DeviceRunner", Buggy)
    hosts = [*_host(), {"name": "mac-2", "arch": "x86_64"}, {"name": "mac-3", "arch": "arm64"}]
    async with lab(tmp_path, engine, hosts, ssh=SSH) as L:
        run = L.create_run()
        with caplog.at_level(logging.ERROR, logger="workers.local"):
            outcome = await drive(L.engine, L.settings, run, concurrency=1)
        jobs = L.jobs(run)
        assert jobs[MAC].status == JobStatus.FAILED and jobs[MAC].error_type == "WorkerError", outcome.failed
        assert "a bug in working on mac-1" in (jobs[MAC].error_message or "")
        assert jobs["mac-2"].status == JobStatus.SUCCEEDED and jobs["mac-3"].status == JobStatus.SUCCEEDED
        assert outcome.status == "failed" and [f[0] for f in outcome.failed] == [MAC]
        assert "crashed" in caplog.text
        with Session(L.engine) as s:
            assert s.exec(select(DeviceLock)).all() == []
            assert all(j.lease_expires_at is None or j.lease_expires_at < utcnow() for j in jobs.values())
