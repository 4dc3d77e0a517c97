"""The OpenSSH client binaries (`ssh`, `sftp`) against macsim, with strict host key checking."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from macsim.fleet import Fleet, SimHost

pytestmark = pytest.mark.skipif(
    not (shutil.which("ssh") and shutil.which("sftp")), reason="needs the OpenSSH client (openssh-client)"
)


def _common(fleet: Fleet, known_hosts: Path) -> list[str]:
    return [
        "-F", "/dev/null",
        "-i", str(fleet.client_key_path),
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=10",
    ]


async def _run(argv: list[str], stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err


async def _ssh(fleet: Fleet, host: SimHost, kh: Path, command: str, stdin: bytes = b"",
               extra: list[str] | None = None) -> tuple[int, bytes, bytes]:
    argv = ["ssh", *_common(fleet, kh), *(extra or []), "-p", str(host.port), f"{host.spec.user}@127.0.0.1",
            command]
    return await _run(argv, stdin)


async def _sftp(fleet: Fleet, host: SimHost, kh: Path, batch: str, tmp: Path) -> tuple[int, bytes, bytes]:
    bfile = tmp / "batch.txt"
    bfile.write_text(batch)
    target = f"{host.spec.user}@127.0.0.1"
    argv = ["sftp", *_common(fleet, kh), "-b", str(bfile), "-P", str(host.port), target]
    return await _run(argv)


@pytest.fixture
def known_hosts(tmp_path: Path, fleet: Fleet) -> Path:
    return fleet.write_known_hosts(tmp_path / "known_hosts")


async def test_ssh_exec_output_stdin_and_exit_status(fleet: Fleet, host: SimHost, known_hosts: Path) -> None:
    rc, out, err = await _ssh(fleet, host, known_hosts, "echo from openssh")
    assert (rc, out) == (0, b"from openssh\n"), err
    rc, out, _ = await _ssh(fleet, host, known_hosts, "cat", stdin=b"piped\x00bytes")
    assert (rc, out) == (0, b"piped\x00bytes")
    rc, _, _ = await _ssh(fleet, host, known_hosts, "exit 3")
    assert rc == 3
    assert [c.command for c in host.mac.commands] == ["echo from openssh", "cat", "exit 3"]


async def test_ssh_can_use_aes128_gcm(fleet: Fleet, host: SimHost, known_hosts: Path) -> None:
    rc, out, err = await _ssh(fleet, host, known_hosts, "echo gcm", extra=["-c", "aes128-gcm@openssh.com"])
    assert (rc, out) == (0, b"gcm\n"), err


async def test_ssh_refuses_a_changed_host_key(fleet: Fleet, host: SimHost, known_hosts: Path) -> None:
    fleet.rotate_host_key("mac-01")
    rc, out, err = await _ssh(fleet, host, known_hosts, "echo should-not-run")
    assert rc == 255
    assert b"REMOTE HOST IDENTIFICATION HAS CHANGED" in err
    assert out == b""
    assert host.mac.commands == []


async def test_ssh_refuses_an_unknown_host(fleet: Fleet, host: SimHost, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    rc, _, err = await _ssh(fleet, host, empty, "echo x")
    assert rc == 255
    assert b"Host key verification failed." in err


async def test_sftp_put_get_chmod(fleet: Fleet, host: SimHost, known_hosts: Path, tmp_path: Path) -> None:
    local = tmp_path / "payload.bin"
    local.write_bytes(bytes(range(256)) * 200)
    local.chmod(0o640)
    back = tmp_path / "back.bin"
    batch = (
        "mkdir /private/tmp/macfleet.t\n"
        "chmod 700 /private/tmp/macfleet.t\n"
        f"put -p {local} /tmp/macfleet.t/payload.bin\n"
        "chmod 600 /tmp/macfleet.t/payload.bin\n"
        f"get /private/tmp/macfleet.t/payload.bin {back}\n"
        "ls -l /tmp/macfleet.t\n"
        "rename /tmp/macfleet.t/payload.bin /tmp/macfleet.t/moved.bin\n"
    )
    rc, out, err = await _sftp(fleet, host, known_hosts, batch, tmp_path)
    assert rc == 0, err
    assert back.read_bytes() == local.read_bytes()
    fs = host.mac.fs
    assert fs.read_bytes("/private/tmp/macfleet.t/moved.bin") == local.read_bytes()
    assert fs.real("/private/tmp/macfleet.t/moved.bin").stat().st_mode & 0o777 == 0o600
    assert fs.real("/private/tmp/macfleet.t").stat().st_mode & 0o777 == 0o700
    assert fs.owner("/private/tmp/macfleet.t/moved.bin") == 501
    assert b"-rw-------" in out and b"admin" in out


async def test_sftp_put_into_library_is_denied(fleet: Fleet, host: SimHost, known_hosts: Path,
                                               tmp_path: Path) -> None:
    local = tmp_path / "x.plist"
    local.write_bytes(b"<plist/>")
    batch = f"put {local} /Library/LaunchDaemons/x.plist\n"
    rc, _, err = await _sftp(fleet, host, known_hosts, batch, tmp_path)
    assert rc != 0
    assert b"Permission denied" in err
    assert not host.mac.fs.exists("/Library/LaunchDaemons/x.plist")


@pytest.mark.skipif(not shutil.which("scp"), reason="needs scp (openssh-client)")
async def test_scp_upload_exits_zero(fleet: Fleet, host: SimHost, known_hosts: Path, tmp_path: Path) -> None:
    """OpenSSH >= 9 `scp` runs over SFTP and fails (status 1) unless the subsystem reports exit status 0."""
    local = tmp_path / "ca.cer"
    local.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    argv = ["scp", *_common(fleet, known_hosts), "-P", str(host.port), str(local),
            f"{host.spec.user}@127.0.0.1:/private/tmp/"]
    rc, _, err = await _run(argv)
    assert rc == 0, err
    assert host.mac.fs.read_bytes("/private/tmp/ca.cer") == local.read_bytes()


async def test_install_steps_through_openssh_stage_install_sh_and_version_check(tmp_path: Path) -> None:
    # the install step's commands as the runner renders them (shlex.join behind sudo -n), sent by the OpenSSH
    # client to a macsim host running its real shell: the version check, the stage copy and ./install.sh
    import json
    import shlex

    from macsim.client1e.dmg import build_dmg
    from macsim.spec import parse_spec
    from tasks.install import InstallParams, MacFacts, steps

    data = json.loads((Path(__file__).parents[1] / "tasks/fixtures/install/install/fresh-intel.json").read_text())
    facts, params = MacFacts.from_json(data["facts"]), InstallParams.from_json(data["params"])
    async with Fleet.start(parse_spec({"hosts": [{"name": "mac-01", "arch": "x86_64"}]}), tmp_path / "s") as f:
        host = f.hosts["mac-01"]
        kh = f.write_known_hosts(tmp_path / "known_hosts")
        host.mac.fs.makedirs(params.private_dir, mode=0o700)
        host.mac.fs.write_bytes(params.dmg_path, build_dmg(params.version))
        plan = [*steps.mount(facts, params).commands, *steps.install(facts, params).commands]
        assert "check-package-version" in plan[1].argv and "install" in plan[-1].argv
        for cmd in plan:
            rc, out, err = await _ssh(f, host, kh, shlex.join(["sudo", "-n", *cmd.argv]))
            assert rc == 0, (cmd.argv[:4], err)
        assert b"Installing 1e.client-macOS_v8.0.2.5.pkg" in out
        assert host.mac.fs.exists("/Library/Application Support/1E/Client/1E.Client")


async def test_macsim_sends_no_ignore_packets_like_sshd(fleet: Fleet, host: SimHost, known_hosts: Path) -> None:
    """sshd sends no SSH_MSG_IGNORE (type 2); asyncssh's server puts one before every packet. OpenSSH's client
    at -vvv logs the type of every packet it receives, so the count is read from a real client."""
    rc, out, err = await _ssh(fleet, host, known_hosts, "echo from sshd", extra=["-vvv"])
    assert (rc, out) == (0, b"from sshd\n"), err
    received = [line for line in err.decode(errors="replace").splitlines() if "receive packet: type" in line]
    assert any(line.endswith("type 98") for line in received), received  # the exit-status channel request
    assert not [line for line in received if line.endswith("type 2")], received
