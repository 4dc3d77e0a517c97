"""The 1E Client daemon's judgement: what the real client would make of this Mac when launchd starts it.

Run by launchd (macsim.client1e.launchd) each time the job starts (load, bootstrap, kickstart -k, boot).
It writes start errors to /Library/Logs/1E.Client.Daemon.log and its operation to /Library/Logs/1E.Client.log,
each line with a timestamp, and returns a `DaemonVerdict` that tests and inspection read.

Checks, in order (the first failure decides): the binary exists; an Intel binary on arm64 needs Rosetta;
Switch and BackgroundChannelUrl are set; an identity in the System keychain whose certificate CN or SAN DNS
equals `hostname` exactly (case-sensitive); that certificate is valid now and allowed for client
authentication; its private key's access list allows the installed binary (path AND SHA-256: an upgraded
binary is not allowed until the identity is imported again with -T, or was imported with -A); its chain is
trusted. Only then does it log `Connected to Switch <first switch>` (unless the Switch rejects the client's
version: the `switch_rejects_versions` fault knob).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from macsim.client1e import paths
from macsim.client1e.conf import first_switch, parse_conf
from macsim.keychain import cert_names
from macsim.mac import VirtualMac

# Exit status launchd records when it cannot spawn the program (`launchctl print`: "78: EX_CONFIG").
SPAWN_FAILED = 78


@dataclass(frozen=True)
class DaemonVerdict:
    """running: the process is up (launchd has a PID). connected: it reached the Switch.
    reason: a stable code (binary-missing, bad-cpu, not-configured, no-identity, cert-expired,
    cert-not-client-auth, key-access, untrusted, connected). message: the log line's text."""

    running: bool
    connected: bool
    reason: str
    message: str
    switch: str = ""  # the Switch it connected to (lsof shows the socket)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def binary_info(data: bytes) -> dict[str, str]:
    """`arch=` and `version=` lines of the fake binary (empty when it is not one)."""
    out: dict[str, str] = {}
    if not data.startswith(b"#!macsim-script 1E.Client"):
        return out
    for line in data.decode("utf-8", "replace").splitlines()[:8]:
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def needs_rosetta(mac: VirtualMac, arch: str) -> bool:
    """An x86_64 program on an arm64 Mac without Rosetta 2 cannot run (EBADARCH)."""
    return mac.spec.arch == "arm64" and arch == "x86_64" and not mac.state.rosetta


def _now() -> str:
    return dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def append_log(mac: VirtualMac, path: str, level: str, message: str) -> None:
    """Append one timestamped line to a root-owned log (0644), creating it when needed."""
    line = f"{_now()} {level:<7} {message}\n"
    real = mac.fs.real(path)
    new = not real.exists()
    with real.open("a") as f:
        f.write(line)
    if new:
        real.chmod(0o644)


def judge(mac: VirtualMac) -> DaemonVerdict:
    """What the client would conclude if it started now. Pure read: writes no log."""
    if not mac.fs.exists(paths.BINARY):
        return DaemonVerdict(False, False, "binary-missing", f"{paths.BINARY}: No such file or directory")
    info = binary_info(mac.fs.read_bytes(paths.BINARY))
    if not info:
        return DaemonVerdict(False, False, "bad-binary", f"{paths.BINARY}: Exec format error")
    if needs_rosetta(mac, info.get("arch", "")):
        return DaemonVerdict(False, False, "bad-cpu", f"{paths.BINARY}: Bad CPU type in executable")
    conf = parse_conf(mac.fs.read_text(paths.CONF)) if mac.fs.exists(paths.CONF) else {}
    switch, bgurl = conf.get("Switch", ""), conf.get("BackgroundChannelUrl", "")
    if not switch or not bgurl:
        empty = [k for k, v in (("Switch", switch), ("BackgroundChannelUrl", bgurl)) if not v]
        return DaemonVerdict(
            True,
            False,
            "not-configured",
            f"Configuration incomplete: {', '.join(empty)} is empty in {paths.CONF}; not connecting",
        )
    host = mac.hostname
    candidates = [i for i in mac.keychain.identities() if host in cert_names(i.cert.x509())]
    if not candidates:
        return DaemonVerdict(
            True,
            False,
            "no-identity",
            f"no client certificate found matching {host} in /Library/Keychains/System.keychain",
        )
    cdhash = hashlib.sha256(mac.fs.read_bytes(paths.BINARY)).hexdigest()
    best: tuple[int, DaemonVerdict] | None = None
    for ident in candidates:
        step, verdict = _check_identity(mac, ident.cert.x509(), ident.key.allows(paths.BINARY, cdhash), host)
        if verdict.connected:
            sw = first_switch(switch)
            if info.get("version") in mac.spec.faults.switch_rejects_versions:
                # the fault knob switch_rejects_versions; the wording is invented (no public sample of a
                # Switch refusing a client version was found)
                return DaemonVerdict(
                    True, False, "switch-rejected",
                    f"Switch {sw} refused the connection: client version {info['version']} is not supported",
                )
            return DaemonVerdict(True, True, "connected", f"Connected to Switch {sw} as {host}", sw)
        if best is None or step > best[0]:
            best = (step, verdict)
    assert best is not None
    return best[1]


def _check_identity(
    mac: VirtualMac, cert: x509.Certificate, key_ok: bool, host: str
) -> tuple[int, DaemonVerdict]:
    now = dt.datetime.now(dt.UTC)
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        return 1, DaemonVerdict(
            True,
            False,
            "cert-expired",
            f"client certificate for {host} is outside its validity period "
            f"(not after {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC)",
        )
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            return 2, DaemonVerdict(
                True,
                False,
                "cert-not-client-auth",
                f"client certificate for {host} is not valid for client authentication",
            )
    except x509.ExtensionNotFound:
        pass
    if not key_ok:
        # The wording the 1E guide quotes (errSecAuthFailed's text).
        return 3, DaemonVerdict(
            True,
            False,
            "key-access",
            "Cannot obtain the client certificate's private key: The user name or "
            "passphrase you entered is not correct.",
        )
    if not mac.keychain.chain_trusted(cert):
        return 4, DaemonVerdict(
            True,
            False,
            "untrusted",
            f"Certificate chain for {host} is not trusted: the issuing CA is not "
            "trusted in the System keychain",
        )
    return 5, DaemonVerdict(True, True, "connected", "")


def run(mac: VirtualMac) -> DaemonVerdict:
    """Start-up as launchd runs it: judge, then write the logs in the host's log dialect
    (`faults.client_log`). Returns the verdict."""
    v = judge(mac)
    if not v.running:
        append_log(mac, paths.DAEMON_LOG, "ERROR", f"Failed to start 1E Client: {v.message}")
        return v
    append_log(mac, paths.DAEMON_LOG, "INFO", "1E Client daemon started")
    for level, message in client_log_lines(mac.spec.faults.client_log, v):
        append_log(mac, paths.CLIENT_LOG, level, message)
    return v


def client_log_lines(dialect: str, v: DaemonVerdict) -> list[tuple[str, str]]:
    """The client log lines a start writes, per dialect. Invented wording throughout (no public sample of the
    real client's log exists); "reworded" is deliberately unlike "standard" so the verify judge cannot
    depend on either."""
    level = "INFO" if v.connected else "ERROR"
    if v.reason == "not-configured":
        level = "WARNING"
    if dialect == "silent":
        return []
    if dialect == "reworded":
        if v.connected:
            sw, _, name = v.message.removeprefix("Connected to Switch ").partition(" as ")
            return [("INFO", "[main] 1E.Client process launched"),
                    ("INFO", f"[net] Switch session established with {sw} (identity {name})")]  # fmt: skip
        return [("INFO", "[main] 1E.Client process launched"), (level, f"[net] Cannot continue: {v.message}")]
    start = [] if dialect == "no-start-line" else [("INFO", "1E Client starting")]
    if v.connected and dialect == "socket-only":
        return start
    return [*start, (level, v.message)]
