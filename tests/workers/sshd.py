"""A real OpenSSH `sshd` for transport tests: 127.0.0.1, a free port, run as the test's own child process.

Generated host keys (ed25519 and ECDSA), a temporary `sshd_config` (`UsePAM no`, `StrictModes no`, public
key authentication only, `internal-sftp`), an authorized_keys file for the current user holding a
generated client key, a `PidFile`, started with `-D -e -f CONFIG` and ended by PID.

Works as a normal user (sshd then only lets that same user in) and as root: root login with keys is
allowed in this test instance's own config only (`PermitRootLogin prohibit-password`).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

SSHD = Path("/usr/sbin/sshd")
_PRIVSEP_DIR = Path("/run/sshd")  # compiled into Debian's sshd; needed when it runs as root


class SshdMissing(RuntimeError):
    """OpenSSH's server is not installed."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_key(key: asyncssh.SSHKey, path: Path) -> str:
    key.write_private_key(str(path))
    path.chmod(0o600)  # sshd refuses readable host keys whatever StrictModes says
    public = key.export_public_key("openssh").decode().split()
    path.with_name(path.name + ".pub").write_text(" ".join(public[:2]) + "\n")
    return " ".join(public[:2])


@dataclass
class Sshd:
    """A running test sshd. `host_keys` maps algorithm to the public key line it serves."""

    base: Path
    port: int
    user: str
    client_key: Path
    host_keys: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path
    config: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def descendants(self) -> list[int]:
        """PIDs of the per-connection sshd processes (and their children) under our listener."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # the command name in parentheses may contain spaces: the ppid is the 2nd field after ")"
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents[int(entry.name)] = ppid
        found: list[int] = []
        frontier = [self.pid]
        while frontier:
            parent = frontier.pop()
            kids = [pid for pid, ppid in parents.items() if ppid == parent]
            found += kids
            frontier += kids
        return found

    def kill_sessions(self) -> list[int]:
        """SIGKILL every per-connection process (not the listener): every open connection drops."""
        killed = []
        for pid in self.descendants():
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        return killed

    def stop(self) -> None:
        """End the sessions and the listener we started, by PID; remove the temporary directory."""
        if self._stopped:
            return
        self._stopped = True
        self.kill_sessions()
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        shutil.rmtree(self.base, ignore_errors=True)


def _config(base: Path, port: int, host_key_paths: list[Path], authorized: Path, as_root: bool) -> str:
    lines = [
        "ListenAddress 127.0.0.1",
        f"Port {port}",
        *(f"HostKey {p}" for p in host_key_paths),
        f"PidFile {base / 'sshd.pid'}",
        f"AuthorizedKeysFile {authorized}",
        "UsePAM no",
        "StrictModes no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "HostbasedAuthentication no",
        "PermitRootLogin prohibit-password" if as_root else "PermitRootLogin no",
        "Subsystem sftp internal-sftp",
        "LogLevel VERBOSE",
        "MaxStartups 64",
        "MaxSessions 64",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "AllowTcpForwarding no",
    ]
    return "\n".join(lines) + "\n"


def _wait_banner(process: subprocess.Popen[bytes], port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.settimeout(2)
                if s.recv(64).startswith(b"SSH-2.0-"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def start_sshd(base: Path, run_as: str | None = None) -> Sshd:
    """Start sshd with everything under `base` (created, and removed again by `stop`).

    `run_as` (root only): run sshd as that unprivileged account, which is then the only one that can log
    in — a non-root session, as on a Mac (OpenSSH honours "signal" requests only in such sessions).

    Raises SshdMissing when sshd is absent, RuntimeError (with sshd's log) when it will not start."""
    if not SSHD.is_file():
        raise SshdMissing(
            f"{SSHD} not found: run scripts/setup (as root it installs openssh-server) — the transport "
            "tests need a real OpenSSH server"
        )
    if run_as is not None and os.geteuid() != 0:
        raise ValueError("run_as needs root")
    as_root = os.geteuid() == 0 and run_as is None
    if as_root and not _PRIVSEP_DIR.is_dir():
        # what the distribution's service unit would create at boot; sshd refuses to start without it
        _PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    base.mkdir(parents=True, exist_ok=True)
    host_keys = {
        "ssh-ed25519": _write_key(
            asyncssh.generate_private_key("ssh-ed25519"), base / "ssh_host_ed25519_key"
        ),
        "ecdsa-sha2-nistp256": _write_key(
            asyncssh.generate_private_key("ecdsa-sha2-nistp256"), base / "ssh_host_ecdsa_key"
        ),
    }
    client_key = base / "client_ed25519"
    client_pub = _write_key(asyncssh.generate_private_key("ssh-ed25519"), client_key)
    authorized = base / "authorized_keys"
    authorized.write_text(client_pub + "\n")
    config = base / "sshd_config"
    log = base / "sshd.log"
    if run_as is not None:
        for path in [base, *base.iterdir()]:
            shutil.chown(path, user=run_as)
    for _attempt in range(3):  # the probed port may be taken before sshd binds it
        port = _free_port()
        config.write_text(
            _config(
                base, port, [base / "ssh_host_ed25519_key", base / "ssh_host_ecdsa_key"], authorized, as_root
            )
        )
        with log.open("ab") as logf:
            process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                user=run_as,  # Popen drops to it in the child, so the PID we hold is sshd itself
                extra_groups=[] if run_as else None,
            )
        if _wait_banner(process, port, timeout=15):
            return Sshd(
                base=base,
                port=port,
                user=run_as or getpass.getuser(),
                client_key=client_key,
                host_keys=host_keys,
                process=process,
                log=log,
                config=config,
            )
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    text = log.read_text(errors="replace")[-3000:]
    shutil.rmtree(base, ignore_errors=True)
    raise RuntimeError(f"sshd did not start; its log:\n{text}")
