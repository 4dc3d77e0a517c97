"""Shared pieces of the end-to-end manual-procedure tests: artifacts, two kinds of SSH session, the procedure.

A *session* is how an admin reaches one Mac: `AsyncsshSession` (the asyncssh client, one exec per command,
SFTP uploads) or `OpenSSHSession` (the `ssh`, `scp` and `sftp` binaries, strict host key checking against a
known_hosts file written from the fleet). Both expose `run(command, stdin=None) -> Result` and
`upload(local, remote_dir)`, so the procedure below is written once and typed the same way over both.

`manual_install` performs the 1E guide's procedure command by command, in the order that works on a real
Mac, asserting each step's exit status and the text the admin would read.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncssh
import pytest
import pytest_asyncio

from macsim.artifacts.certs import CertArtifacts, write_cert_artifacts
from macsim.artifacts.dmg import write_dmg
from macsim.client1e import paths
from macsim.fleet import Fleet, SimHost
from macsim.spec import parse_spec

OLD_VERSION = "8.0.1.23"
NEW_VERSION = "8.0.2.5"
SWITCH = "tachyon.acme.local:4000"
BACKGROUND = "https://tachyon.acme.local/Background"
SYSTEM_KC = "/Library/Keychains/System.keychain"
UPLOAD_DIR = "/private/tmp/1e.client"  # where the admin copies the downloads (SFTP)
STAGE_DIR = "/private/tmp/1e.install"  # the "separate directory" for install.sh + the .pkg
# The admin's own mount point: a non-root user cannot create one in root-owned /Volumes (macsim's hdiutil).
MOUNT_POINT = "/private/tmp/1e.mnt"
COMMAND_TIMEOUT = 30.0


@dataclass(frozen=True)
class Result:
    status: int
    stdout: str
    stderr: str

    @property
    def out(self) -> str:
        """stdout and stderr together, for assertions on text wherever the tool printed it."""
        return self.stdout + self.stderr


@dataclass
class Artifacts:
    """DMGs of both versions and the certificate artifacts, written once per test module."""

    out: Path
    dmg: dict[str, Path]
    certs: CertArtifacts

    def pfx(self, host: str) -> Path:
        return self.certs.host_pfx[host]

    def password(self, pfx: Path) -> str:
        return self.certs.password_for(pfx)


def make_artifacts(out: Path, hosts: dict[str, str], bad_host: str | None = None) -> Artifacts:
    """Write both DMGs and the certificates for `hosts` (handle -> exact host name) into `out`."""
    dmgs = {v: write_dmg(out, v) for v in (OLD_VERSION, NEW_VERSION)}
    return Artifacts(out=out, dmg=dmgs, certs=write_cert_artifacts(out, hosts, bad_host=bad_host))


class Session(Protocol):
    host: SimHost

    async def run(self, command: str, stdin: str | None = None) -> Result: ...

    async def upload(self, local: list[Path], remote_dir: str) -> None: ...


class AsyncsshSession:
    """One asyncssh connection to a host; each `run` is a separate exec request."""

    def __init__(self, host: SimHost, conn: asyncssh.SSHClientConnection) -> None:
        self.host = host
        self._conn = conn

    async def run(self, command: str, stdin: str | None = None) -> Result:
        # stdin always ends (EOF), as with `ssh host cmd < /dev/null`: a tool asking a question gets no answer
        if stdin is None:
            run = self._conn.run(command, stdin=asyncssh.DEVNULL, check=False)
        else:
            run = self._conn.run(command, input=stdin, check=False)
        r = await asyncio.wait_for(run, COMMAND_TIMEOUT)
        return Result(r.exit_status if r.exit_status is not None else -1, str(r.stdout), str(r.stderr))

    async def upload(self, local: list[Path], remote_dir: str) -> None:
        """mkdir -p remote_dir over SFTP and put each file into it, keeping its permissions."""
        async with self._conn.start_sftp_client() as sftp:
            await sftp.makedirs(remote_dir, exist_ok=True)
            await sftp.put([str(p) for p in local], remote_dir, preserve=True)


def open_asyncssh(fleet: Fleet, host: SimHost) -> Any:
    """`async with open_asyncssh(fleet, host) as conn:` — strict host key checking, the fleet's key."""
    return asyncssh.connect(**host.connect_kwargs(fleet.client_key_path), connect_timeout=10)


class OpenSSHSession:
    """The OpenSSH binaries: `ssh` per command, `scp` or `sftp` to upload; StrictHostKeyChecking=yes."""

    def __init__(self, fleet: Fleet, host: SimHost, known_hosts: Path, workdir: Path) -> None:
        self.host = host
        self._key = fleet.client_key_path
        self._kh = known_hosts
        self._workdir = workdir
        self.uploads_via: list[str] = []  # which binary each upload used, for the test to assert

    def _common(self) -> list[str]:
        return [
            "-F", "/dev/null",
            "-i", str(self._key),
            "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={self._kh}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10",
        ]

    @property
    def _target(self) -> str:
        return f"{self.host.spec.user}@127.0.0.1"

    async def run(self, command: str, stdin: str | None = None) -> Result:
        argv = ["ssh", *self._common(), "-p", str(self.host.port), self._target, command]
        status, out, err = await run_local(argv, (stdin or "").encode())
        return Result(status, out.decode(), err.decode())

    async def upload(self, local: list[Path], remote_dir: str) -> None:
        """The first file goes up with `sftp` (which also makes the directory), the rest with `scp`."""
        batch = self._workdir / f"sftp-{self.host.name}.batch"
        batch.write_text(f"-mkdir {remote_dir}\nput -p {local[0]} {remote_dir}/\n")
        argv = ["sftp", *self._common(), "-b", str(batch), "-P", str(self.host.port), self._target]
        status, _, err = await run_local(argv)
        assert status == 0, err.decode()
        self.uploads_via.append("sftp")
        if local[1:]:
            # OpenSSH >= 9 `scp` speaks SFTP underneath (macsim serves no legacy `scp -t`)
            argv = ["scp", *self._common(), "-p", "-P", str(self.host.port), *map(str, local[1:]),
                    f"{self._target}:{remote_dir}/"]
            status, _, err = await run_local(argv)
            assert status == 0, err.decode()
            self.uploads_via.append("scp")


async def run_local(argv: list[str], stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    """Run a local program to completion (killed by PID after COMMAND_TIMEOUT seconds)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), COMMAND_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err


def q(s: str) -> str:
    """Shell-quote one word as an admin would type it."""
    return shlex.quote(s)


async def ok(sess: Session, command: str, stdin: str | None = None) -> Result:
    """Run a command that must succeed; the failure message shows what the Mac printed."""
    r = await sess.run(command, stdin)
    assert r.status == 0, f"{command!r} -> {r.status}\n{r.out}"
    return r


def client_log(sess: Session) -> str:
    fs = sess.host.mac.fs
    return fs.read_text(paths.CLIENT_LOG) if fs.exists(paths.CLIENT_LOG) else ""


def daemon_log(sess: Session) -> str:
    fs = sess.host.mac.fs
    return fs.read_text(paths.DAEMON_LOG) if fs.exists(paths.DAEMON_LOG) else ""


async def upload_downloads(sess: Session, arts: Artifacts, version: str, cas: list[Path]) -> None:
    """Step 0: the admin copies the DMG, the host's PFX and each CA .cer onto the Mac."""
    await sess.upload([arts.dmg[version], arts.pfx(sess.host.name), *cas], UPLOAD_DIR)
    fs = sess.host.mac.fs
    for p in [arts.dmg[version], arts.pfx(sess.host.name), *cas]:
        assert fs.read_bytes(f"{UPLOAD_DIR}/{p.name}") == p.read_bytes()


async def install_rosetta_if_needed(sess: Session) -> None:
    """On Apple silicon without Rosetta 2 the Intel client cannot run: install it first (needs root)."""
    if sess.host.spec.arch == "arm64" and not sess.host.mac.state.rosetta:
        r = await ok(sess, "sudo /usr/sbin/softwareupdate --install-rosetta --agree-to-license")
        assert "Install of Rosetta 2 finished successfully" in r.out
        assert sess.host.mac.state.rosetta


async def attach_and_stage(sess: Session, version: str, stage: str = STAGE_DIR) -> str:
    """hdiutil attach the DMG (-nobrowse, a mount point), copy install.sh + the .pkg into STAGE_DIR.

    Returns the mount point."""
    volume = MOUNT_POINT
    dmg = f"{UPLOAD_DIR}/{paths.dmg_name(version)}"
    r = await ok(sess, f"hdiutil attach -nobrowse -mountpoint {volume} {dmg}")
    # the last line of the output names the mount point (as the 1E guide says)
    assert r.stdout.strip().splitlines()[-1].endswith(volume), r.stdout
    assert volume in sess.host.mac.state.mounts
    await ok(sess, f"mkdir -p {stage} && cp {volume}/scripts/install.sh {volume}/{paths.pkg_name(version)} "
                   f"{stage}/")
    return volume


async def run_install_sh(sess: Session, *args: str, stage: str = STAGE_DIR) -> Result:
    """`cd STAGE && sudo ./install.sh ARGS` — the guide's option 1."""
    return await ok(sess, f"cd {stage} && sudo ./install.sh {' '.join(q(a) for a in args)}".rstrip())


async def trust_cas(sess: Session, cas: list[Path]) -> None:
    """One `add-trusted-cert -d -r trustRoot` per CA file, as the guide tells (a bundle imports only one)."""
    for ca in cas:
        await ok(sess, f"sudo security add-trusted-cert -d -r trustRoot -k {SYSTEM_KC} "
                       f"{UPLOAD_DIR}/{ca.name}")


async def import_pfx_with_T(sess: Session, arts: Artifacts) -> str:
    """The guide's import command, password in argv with -P. Returns the password used."""
    pfx = arts.pfx(sess.host.name)
    pw = arts.password(pfx)
    r = await ok(sess, f"sudo security import {UPLOAD_DIR}/{pfx.name} -k {SYSTEM_KC} -t agg -f pkcs12 "
                       f"-P {q(pw)} -T {q(paths.BINARY)}")
    assert "1 identity imported." in r.stdout
    return pw


async def restart_client(sess: Session, kickstart: bool = False) -> None:
    """unload + load -w (the guide's commands), or `launchctl kickstart -k system/LABEL`."""
    if kickstart:
        await ok(sess, f"sudo launchctl kickstart -k system/{paths.LABEL}")
    else:
        await ok(sess, f"sudo launchctl unload {paths.PLIST}")
        await ok(sess, f"sudo launchctl load -w {paths.PLIST}")


async def assert_connected(sess: Session, version: str, switch: str = SWITCH) -> None:
    """`launchctl list | grep -i 1e` shows the job with a PID; the log's last line: the Switch connection."""
    r = await ok(sess, "sudo launchctl list | grep -i 1e")
    fields = r.stdout.split()
    assert fields[-1] == paths.LABEL and fields[0].isdigit(), r.stdout
    tail = await ok(sess, f"tail {paths.CLIENT_LOG}")  # as the guide says (without -f: it must end)
    assert f"Connected to Switch {switch} as {sess.host.hostname}" in tail.stdout.splitlines()[-1]
    job = sess.host.mac.state.launchd[paths.LABEL]
    assert job, "the job is loaded"
    info = await ok(sess, f"pkgutil --pkg-info {paths.PKG_ID}")
    assert f"version: {version}" in info.stdout


Importer = Callable[[Session, Artifacts], Awaitable[str]]


async def manual_install(
    sess: Session,
    arts: Artifacts,
    version: str = NEW_VERSION,
    *,
    importer: Importer = import_pfx_with_T,
    kickstart: bool = False,
) -> str:
    """The whole documented procedure, command by command. Returns the PFX password `importer` used."""
    cas = [arts.certs.lab_ca.pem, arts.certs.switch_ca.pem]
    await upload_downloads(sess, arts, version, cas)
    await install_rosetta_if_needed(sess)
    volume = await attach_and_stage(sess, version)
    await run_install_sh(sess, SWITCH, BACKGROUND)
    # install.sh started the client, which cannot connect yet: no identity in the System keychain
    last = client_log(sess).strip().splitlines()[-1]
    assert f"no client certificate found matching {sess.host.hostname}" in last, last
    await ok(sess, f"hdiutil detach {volume}")
    assert volume not in sess.host.mac.state.mounts
    await trust_cas(sess, cas)
    pw = await importer(sess, arts)
    await restart_client(sess, kickstart=kickstart)
    await assert_connected(sess, version)
    return pw


def module_fleet(hosts: list[dict[str, Any]], bad_host: str | None = None) -> tuple[Any, Any]:
    """The module-scoped `arts` (DMGs, PFXs, CAs for these Macs) and `fleet` fixtures of a test module whose
    simulated Macs are `hosts`: `arts, fleet = module_fleet(HOSTS)`."""

    @pytest.fixture(scope="module")
    def arts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
        names = {h.name: h.hostname for h in parse_spec({"hosts": hosts}).hosts}
        return make_artifacts(tmp_path_factory.mktemp("artifacts"), names, bad_host=bad_host)

    @pytest_asyncio.fixture(scope="module", loop_scope="module")
    async def fleet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fleet]:
        async with Fleet.start(parse_spec({"hosts": hosts}), tmp_path_factory.mktemp("fleet")) as f:
            yield f

    return arts, fleet
