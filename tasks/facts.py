"""What a Mac reports about itself, parsed into typed facts. Pure: parsers take `ProbeOutput`s, do no I/O.

Each parser reads one probe's output (real macOS tool output; see tests/tasks/fixtures/facts/). A probe
that fails because the thing is absent (no receipt, no conf, job not loaded, no trust settings) is a normal
fact, not an error; a probe that did not run to its end (exit status None) is an error (`FactsError`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tasks.evidence import DEFAULT_RULES, Endpoint, log_evidence, parse_lsof_fn, socket_to_switch
from tasks.hostnames import MacNames
from tasks.model import Command, ProbeOutput
from tasks.model import FactsError as FactsError  # re-exported: parsers raise it

# macOS and 1E Client facts (../shared/DESIGN.md "macOS facts").
SYSTEM_KEYCHAIN = "/Library/Keychains/System.keychain"
PKG_ID = "com.1e.pkg.1E.Client"
LABEL = "com.1e.pkg.1E.Client"
CLIENT_DIR = "/Library/Application Support/1E/Client"
BINARY = f"{CLIENT_DIR}/1E.Client"
CONF = f"{CLIENT_DIR}/1E.Client.conf"
UPDATECONF = f"{CLIENT_DIR}/1E.Client.updateconf.sh"
PLIST = f"/Library/LaunchDaemons/{LABEL}.plist"
CLIENT_LOG = "/Library/Logs/1E.Client.log"
DAEMON_LOG = "/Library/Logs/1E.Client.Daemon.log"
# What an installed client leaves on disk (receipt aside): probed with `ls -1d` by the lifecycle workflows.
KNOWN_PATHS = (BINARY, CONF, UPDATECONF, PLIST, CLIENT_DIR)
LOG_TAIL_LINES = 200
START_LINE = "1E Client starting"  # macsim's wording; a log without it is judged as a whole (see LogBlock)
LSOF = "/usr/sbin/lsof"


def _finished(out: ProbeOutput, what: str) -> int:
    if out.exit_status is None:
        raise FactsError(f"{what}: the probe did not run to its end")
    return out.exit_status


# ---- records --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    """One row of `security find-identity`: the certificate's SHA-1 (upper-case hex) and its label."""

    sha1: str
    label: str
    valid: bool

    def as_json(self) -> dict[str, Any]:
        return {"sha1": self.sha1, "label": self.label, "valid": self.valid}


@dataclass(frozen=True)
class KeychainCert:
    """One certificate of `security find-certificate -a -Z`: hashes (upper-case hex) and its label."""

    sha256: str
    sha1: str
    label: str | None

    def as_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "sha1": self.sha1, "label": self.label}


@dataclass(frozen=True)
class TrustEntry:
    """One certificate of `security dump-trust-settings -d`: its name and the result types of its trust
    settings (an empty tuple: no usage constraints, i.e. "Always Trust" as a root)."""

    name: str
    results: tuple[str, ...]

    @property
    def trusted(self) -> bool:
        return all(
            r in ("kSecTrustSettingsResultTrustRoot", "kSecTrustSettingsResultTrustAsRoot")
            for r in self.results
        )

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "results": list(self.results)}


@dataclass(frozen=True)
class LaunchdJob:
    """`launchctl print system/<label>`: loaded (the print succeeded), running state, pid, last exit."""

    loaded: bool
    running: bool = False
    pid: int | None = None
    last_exit: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"loaded": self.loaded, "running": self.running, "pid": self.pid, "last_exit": self.last_exit}


@dataclass(frozen=True)
class LogBlock:
    """The client log's tail since its last start line (the whole tail when it holds none: not every client
    wording has one). connected / error: its latest evidence line (tasks.evidence, default patterns) says
    connected / is an error (that line)."""

    lines: tuple[str, ...]

    @property
    def connected(self) -> bool:
        return log_evidence(self.lines, DEFAULT_RULES).connected

    @property
    def error(self) -> str | None:
        found = log_evidence(self.lines, DEFAULT_RULES)
        return found.line if found.error else None

    def as_json(self) -> list[str]:
        return list(self.lines)


# ---- parsers (one per probe) ------------------------------------------------------------------------------
def parse_sw_vers(out: ProbeOutput) -> str:
    """`sw_vers`: the ProductVersion value."""
    _finished(out, "sw_vers")
    m = re.search(r"^ProductVersion:\s*(\S+)\s*$", out.stdout, re.M)
    if m is None:
        raise FactsError(f"sw_vers: no ProductVersion in {out.stdout!r}")
    return m.group(1)


def parse_uname_m(out: ProbeOutput) -> str:
    """`uname -m`: the machine hardware name (arm64, x86_64)."""
    if _finished(out, "uname -m") != 0 or not out.stdout.strip():
        raise FactsError(f"uname -m failed: {out.stderr.strip()}")
    return out.stdout.strip()


def parse_rosetta(out: ProbeOutput) -> bool:
    """`arch -x86_64 /usr/bin/true`: exit 0 means the Mac can run Intel code (Intel, or Rosetta 2)."""
    return _finished(out, "arch -x86_64") == 0


def parse_hostname(out: ProbeOutput) -> str:
    """`hostname`: configd's HostName when set, else a DHCP or reverse-DNS name, else LocalHostName.local
    (see tasks/hostnames.py for which name a certificate must carry)."""
    if _finished(out, "hostname") != 0 or not out.stdout.strip():
        raise FactsError(f"hostname failed: {out.stderr.strip()}")
    return out.stdout.strip()


def parse_scutil_get(out: ProbeOutput) -> str | None:
    """`scutil --get KEY`: the value, or None when it is not set ("KEY: not set" on stderr, exit 1: chef/chef
    pull request 10724 quotes `scutil --get HostName` so on a real Mac; any other failure is an error)."""
    if _finished(out, "scutil --get") != 0:
        if "not set" in out.stderr or "not set" in out.stdout:
            return None
        raise FactsError(f"scutil --get failed: {(out.stderr or out.stdout).strip()}")
    return out.stdout.strip() or None


def parse_pkg_info(out: ProbeOutput) -> str | None:
    """`pkgutil --pkg-info ID`: the receipt's version, or None when there is no receipt."""
    if _finished(out, "pkgutil --pkg-info") != 0:
        if "No receipt" in out.stderr or "No receipt" in out.stdout:
            return None
        raise FactsError(f"pkgutil --pkg-info failed: {out.stderr.strip()}")
    m = re.search(r"^version:\s*(\S+)\s*$", out.stdout, re.M)
    if m is None:
        raise FactsError(f"pkgutil --pkg-info: no version line in {out.stdout!r}")
    return m.group(1)


def parse_pkg_location(out: ProbeOutput) -> str | None:
    """`pkgutil --pkg-info ID`: the absolute directory the receipt's paths are relative to (`volume` joined
    with `location`; an empty location is the volume itself), None when there is no receipt."""
    if parse_pkg_info(out) is None:
        return None
    vol = re.search(r"^volume:[ \t]*(.*?)\s*$", out.stdout, re.M)
    loc = re.search(r"^location:[ \t]*(.*?)\s*$", out.stdout, re.M)
    volume = vol.group(1) if vol and vol.group(1) else "/"
    location = loc.group(1) if loc else ""
    return "/" + "/".join(x for x in (volume.strip("/"), location.strip("/")) if x)


def parse_pkg_files(out: ProbeOutput) -> tuple[str, ...]:
    """`pkgutil --only-files --files ID`: the receipt's file paths (relative to its location), () when
    there is no receipt."""
    if _finished(out, "pkgutil --files") != 0:
        if "No receipt" in out.stderr or "No receipt" in out.stdout:
            return ()
        raise FactsError(f"pkgutil --files failed: {out.stderr.strip()}")
    return tuple(line for line in out.stdout.splitlines() if line.strip())


def parse_ls_d(out: ProbeOutput) -> tuple[str, ...]:
    """`ls -1d PATH...`: the paths that exist (ls prints each existing operand on its own line and reports
    a missing one on stderr with exit 1)."""
    status = _finished(out, "ls -1d")
    if status not in (0, 1):
        raise FactsError(f"ls -1d failed: {out.stderr.strip()}")
    return tuple(sorted(line for line in out.stdout.splitlines() if line.strip()))


def parse_shasum(out: ProbeOutput) -> str | None:
    """`shasum -a 256 FILE`: the lower-case hex digest, or None when the file is absent."""
    if _finished(out, "shasum") != 0:
        return None
    m = re.match(r"^([0-9a-fA-F]{64})\s", out.stdout)
    if m is None:
        raise FactsError(f"shasum: unexpected output {out.stdout!r}")
    return m.group(1).lower()


def parse_conf(out: ProbeOutput) -> dict[str, str] | None:
    """`cat CONF`: Key -> value of every `Key=Value` line (comments skipped; last wins), None when absent."""
    if _finished(out, "cat conf") != 0:
        return None
    values: dict[str, str] = {}
    for line in out.stdout.splitlines():
        s = line.strip()
        if not s or s.startswith("#") or "=" not in s:
            continue
        k, v = s.split("=", 1)
        values[k.strip()] = v.strip()
    return values


def parse_launchctl_print(out: ProbeOutput) -> LaunchdJob:
    """`launchctl print system/LABEL`: not loaded when it fails ("Could not find service"), else the
    `state =`, `pid =` and `last exit code =` lines."""
    if _finished(out, "launchctl print") != 0:
        return LaunchdJob(loaded=False)
    state = re.search(r"^\s*state = (.+?)\s*$", out.stdout, re.M)
    pid = re.search(r"^\s*pid = (\d+)\s*$", out.stdout, re.M)
    last = re.search(r"^\s*last exit code = (.+?)\s*$", out.stdout, re.M)
    running = state is not None and state.group(1) == "running"
    return LaunchdJob(
        loaded=True,
        running=running,
        pid=int(pid.group(1)) if pid else None,
        last_exit=last.group(1) if last else None,
    )


_IDENTITY_ROW = re.compile(r'^\s*\d+\)\s+([0-9A-Fa-f]{40})\s+"(.*)"(?:\s+\((\S+)\))?\s*$')


def parse_find_identity(out: ProbeOutput) -> tuple[Identity, ...]:
    """`security find-identity KEYCHAIN` (all identities, not only valid ones): one Identity per SHA-1 of
    the "Matching identities" lists; valid when it also appears under "Valid identities only"."""
    _finished(out, "security find-identity")
    rows: dict[str, tuple[str, bool]] = {}
    section = ""
    for line in out.stdout.splitlines():
        if "Matching identities" in line:
            section = "all"
            continue
        if "Valid identities only" in line:
            section = "valid"
            continue
        m = _IDENTITY_ROW.match(line)
        if m is None:
            continue
        sha1, label = m.group(1).upper(), m.group(2)
        if section == "valid":
            rows[sha1] = (rows.get(sha1, (label, True))[0], True)
        elif sha1 not in rows:
            rows[sha1] = (label, False)
    return tuple(Identity(sha1, label, valid) for sha1, (label, valid) in rows.items())


def parse_find_certificate(out: ProbeOutput) -> tuple[KeychainCert, ...]:
    """`security find-certificate -a -Z KEYCHAIN`: each certificate's SHA-256, SHA-1 and "labl" attribute.
    No certificate at all (errSecItemNotFound) is an empty keychain."""
    if _finished(out, "security find-certificate") != 0:
        if "could not be found" in out.stderr:
            return ()
        raise FactsError(f"security find-certificate failed: {out.stderr.strip()}")
    certs: list[KeychainCert] = []
    sha256: str | None = None
    sha1: str | None = None
    label: str | None = None

    def flush() -> None:
        if sha1 is not None:
            certs.append(KeychainCert(sha256=(sha256 or "").upper(), sha1=sha1.upper(), label=label))

    for line in out.stdout.splitlines():
        m = re.match(r"^SHA-256 hash:\s*([0-9A-Fa-f]{64})\s*$", line)
        if m:
            flush()
            sha256, sha1, label = m.group(1), None, None
            continue
        m = re.match(r"^SHA-1 hash:\s*([0-9A-Fa-f]{40})\s*$", line)
        if m:
            if sha1 is not None:  # an old `security` prints only SHA-1 lines
                flush()
                sha256, label = None, None
            sha1 = m.group(1)
            continue
        m = re.match(r'^\s*"labl"<blob>=(?:0x[0-9A-Fa-f]+\s+)?"(.*)"\s*$', line)
        if m:
            label = m.group(1)
    flush()
    return tuple(certs)


def parse_dump_trust_settings(out: ProbeOutput) -> tuple[TrustEntry, ...]:
    """`security dump-trust-settings -d`: each admin-domain certificate's name and result types. "No Trust
    Settings were found" (a non-zero exit) is an empty list."""
    if _finished(out, "security dump-trust-settings") != 0:
        if "No Trust Settings" in out.stderr or "No Trust Settings" in out.stdout:
            return ()
        raise FactsError(f"security dump-trust-settings failed: {out.stderr.strip()}")
    entries: list[TrustEntry] = []
    name: str | None = None
    results: list[str] = []
    for line in out.stdout.splitlines():
        m = re.match(r"^Cert \d+:\s*(.*?)\s*$", line)
        if m:
            if name is not None:
                entries.append(TrustEntry(name, tuple(results)))
            name, results = m.group(1), []
            continue
        m = re.match(r"^\s*Result Type\s*:\s*(\S+)\s*$", line)
        if m and name is not None:
            results.append(m.group(1))
    if name is not None:
        entries.append(TrustEntry(name, tuple(results)))
    return tuple(entries)


def parse_df_k(out: ProbeOutput) -> int:
    """`df -k /`: the Available column of the root volume, in bytes."""
    if _finished(out, "df -k") != 0:
        raise FactsError(f"df -k / failed: {out.stderr.strip()}")
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    if len(lines) < 2:
        raise FactsError(f"df -k /: unexpected output {out.stdout!r}")
    header, row = lines[0].split(), lines[-1].split()
    # the file system name may contain blanks: count columns from the right
    from_right = 6 if "iused" in header else 3
    try:
        return int(row[-from_right]) * 1024
    except (IndexError, ValueError):
        raise FactsError(f"df -k /: unexpected row {lines[-1]!r}") from None


def parse_log_tail(out: ProbeOutput) -> LogBlock | None:
    """`tail -n 200 LOG`: the lines from the last "1E Client starting" on (that line excluded), or every line
    when the tail holds no start line; None when there is no log (or it is empty)."""
    if _finished(out, "tail log") != 0:
        return None
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    if not lines:
        return None
    starts = [i for i, line in enumerate(lines) if START_LINE in line]
    return LogBlock(tuple(lines[starts[-1] + 1 :] if starts else lines))


def parse_client_sockets(out: ProbeOutput) -> tuple[str, ...]:
    """The client's established TCP connections' remote ends ("addr:port"), from `lsof -Fn` (see
    tasks.evidence.parse_lsof_fn); () when the client does not run or holds none."""
    _finished(out, "lsof")
    return tuple(str(e) for e in parse_lsof_fn(out))


# ---- the facts record ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class MacFacts:
    """Everything the install planners decide from, gathered in one round trip."""

    macos_version: str
    arch: str
    can_run_x86_64: bool
    hostname: str
    local_host_name: str | None
    host_name: str | None  # scutil HostName; None: not set
    computer_name: str | None
    client_version: str | None
    binary_sha256: str | None
    conf: Mapping[str, str] | None
    job: LaunchdJob
    client_sockets: tuple[str, ...]
    identities: tuple[Identity, ...]
    certificates: tuple[KeychainCert, ...]
    admin_trust: tuple[TrustEntry, ...]
    free_bytes: int
    dmg_cached: bool
    log_block: LogBlock | None

    @property
    def connected(self) -> bool:
        """The running daemon holds a connection to a port of the conf's Switch, or the log's latest
        evidence (since its last start line, if any) says connected."""
        if not self.job.running:
            return False
        switch = (self.conf or {}).get("Switch")
        if socket_to_switch((_endpoint_of(s) for s in self.client_sockets), switch) is not None:
            return True
        return self.log_block is not None and self.log_block.connected

    @property
    def names(self) -> MacNames:
        return MacNames(self.hostname, self.local_host_name, self.host_name, self.computer_name)

    def identity(self, sha1: str) -> Identity | None:
        return next((i for i in self.identities if i.sha1.upper() == sha1.upper()), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "macos_version": self.macos_version,
            "arch": self.arch,
            "can_run_x86_64": self.can_run_x86_64,
            "hostname": self.hostname,
            "local_host_name": self.local_host_name,
            "host_name": self.host_name,
            "computer_name": self.computer_name,
            "client_version": self.client_version,
            "binary_sha256": self.binary_sha256,
            "conf": dict(self.conf) if self.conf is not None else None,
            "job": self.job.as_json(),
            "client_sockets": list(self.client_sockets),
            "identities": [i.as_json() for i in self.identities],
            "certificates": [c.as_json() for c in self.certificates],
            "admin_trust": [t.as_json() for t in self.admin_trust],
            "free_bytes": self.free_bytes,
            "dmg_cached": self.dmg_cached,
            "log_block": self.log_block.as_json() if self.log_block is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MacFacts:
        """Strict: every field must be present and no other (a fixture missing a fact is an error)."""
        names = set(cls.__dataclass_fields__)
        missing, extra = names - set(data), set(data) - names
        if missing or extra:
            raise ValueError(f"MacFacts: missing {sorted(missing)}, unknown {sorted(extra)}")
        job = data["job"]
        log = data["log_block"]
        return cls(
            macos_version=str(data["macos_version"]),
            arch=str(data["arch"]),
            can_run_x86_64=bool(data["can_run_x86_64"]),
            hostname=str(data["hostname"]),
            local_host_name=data["local_host_name"],
            host_name=data["host_name"],
            computer_name=data["computer_name"],
            client_version=data["client_version"],
            binary_sha256=data["binary_sha256"],
            conf=dict(data["conf"]) if data["conf"] is not None else None,
            job=LaunchdJob(
                loaded=bool(job["loaded"]),
                running=bool(job["running"]),
                pid=job["pid"],
                last_exit=job["last_exit"],
            ),
            client_sockets=tuple(str(x) for x in data["client_sockets"]),
            identities=tuple(Identity(i["sha1"], i["label"], bool(i["valid"])) for i in data["identities"]),
            certificates=tuple(
                KeychainCert(c["sha256"], c["sha1"], c["label"]) for c in data["certificates"]
            ),
            admin_trust=tuple(TrustEntry(t["name"], tuple(t["results"])) for t in data["admin_trust"]),
            free_bytes=int(data["free_bytes"]),
            dmg_cached=bool(data["dmg_cached"]),
            log_block=LogBlock(tuple(log)) if log is not None else None,
        )


def _endpoint_of(text: str) -> Endpoint:
    host, _, port = text.rpartition(":")
    return Endpoint(host.strip("[]"), int(port))


# The client's established TCP connections: its PID from `launchctl print`, then lsof for that PID (field
# output, see tasks.evidence.parse_lsof_fn). Exits 0 with no output when the job runs no process.
SOCKETS_SCRIPT = (
    "pid=$(launchctl print \"system/$1\" 2>/dev/null | grep -E '^[\t ]*pid = [0-9]+$' | head -n 1 | "
    "tr -cd 0123456789)\n"
    f'if [ -n "$pid" ]; then {LSOF} -nP -a -p "$pid" -iTCP -sTCP:ESTABLISHED -Fn; fi\n'
    "exit 0\n"
)


def _ro(*argv: str) -> Command:
    return Command(tuple(argv), mutating=False)


def mac_fact_commands() -> tuple[tuple[str, Command], ...]:
    """The read-only probes behind `MacFacts` (except the DMG cache, which depends on install params)."""
    return (
        ("sw_vers", _ro("sw_vers")),
        ("arch", _ro("uname", "-m")),
        ("x86_64", _ro("arch", "-x86_64", "/usr/bin/true")),
        ("hostname", _ro("hostname")),
        ("local_host_name", _ro("scutil", "--get", "LocalHostName")),
        ("host_name", _ro("scutil", "--get", "HostName")),
        ("computer_name", _ro("scutil", "--get", "ComputerName")),
        ("pkg_info", _ro("pkgutil", "--pkg-info", PKG_ID)),
        ("binary_sha256", _ro("shasum", "-a", "256", BINARY)),
        ("conf", _ro("cat", CONF)),
        ("launchd", _ro("launchctl", "print", f"system/{LABEL}")),
        ("client_sockets", _ro("/bin/sh", "-c", SOCKETS_SCRIPT, "client-sockets", LABEL)),
        ("identities", _ro("security", "find-identity", SYSTEM_KEYCHAIN)),
        ("certificates", _ro("security", "find-certificate", "-a", "-Z", SYSTEM_KEYCHAIN)),
        ("admin_trust", _ro("security", "dump-trust-settings", "-d")),
        ("df", _ro("df", "-k", "/")),
        ("client_log", _ro("tail", "-n", str(LOG_TAIL_LINES), CLIENT_LOG)),
    )


def require(outputs: Mapping[str, ProbeOutput], probes: tuple[tuple[str, Command], ...]) -> None:
    missing = [name for name, _ in probes if name not in outputs]
    if missing:
        raise FactsError(f"missing probe outputs: {', '.join(missing)}")


def parse_mac_facts(outputs: Mapping[str, ProbeOutput], dmg_cached: bool = False) -> MacFacts:
    require(outputs, mac_fact_commands())
    return MacFacts(
        macos_version=parse_sw_vers(outputs["sw_vers"]),
        arch=parse_uname_m(outputs["arch"]),
        can_run_x86_64=parse_rosetta(outputs["x86_64"]),
        hostname=parse_hostname(outputs["hostname"]),
        local_host_name=parse_scutil_get(outputs["local_host_name"]),
        host_name=parse_scutil_get(outputs["host_name"]),
        computer_name=parse_scutil_get(outputs["computer_name"]),
        client_version=parse_pkg_info(outputs["pkg_info"]),
        binary_sha256=parse_shasum(outputs["binary_sha256"]),
        conf=parse_conf(outputs["conf"]),
        job=parse_launchctl_print(outputs["launchd"]),
        client_sockets=parse_client_sockets(outputs["client_sockets"]),
        identities=parse_find_identity(outputs["identities"]),
        certificates=parse_find_certificate(outputs["certificates"]),
        admin_trust=parse_dump_trust_settings(outputs["admin_trust"]),
        free_bytes=parse_df_k(outputs["df"]),
        dmg_cached=dmg_cached,
        log_block=parse_log_tail(outputs["client_log"]),
    )


# ---- `orchestrate inventory probe`: who the Mac is, read without root in one exec -------------------------
@dataclass(frozen=True)
class HostFacts:
    """The Mac's macOS version, architecture and names (keys as in MacFacts.as_json)."""

    macos_version: str
    arch: str
    names: MacNames

    def as_json(self) -> dict[str, Any]:
        n = self.names
        return {
            "macos_version": self.macos_version,
            "arch": self.arch,
            "hostname": n.hostname,
            "local_host_name": n.local_host_name,
            "host_name": n.host_name,
            "computer_name": n.computer_name,
        }


def host_fact_commands() -> tuple[tuple[str, Command], ...]:
    names = ("sw_vers", "arch", "hostname", "local_host_name", "host_name", "computer_name")
    return tuple((name, c) for name, c in mac_fact_commands() if name in names)


def parse_host_facts(outputs: Mapping[str, ProbeOutput]) -> HostFacts:
    require(outputs, host_fact_commands())
    return HostFacts(
        macos_version=parse_sw_vers(outputs["sw_vers"]),
        arch=parse_uname_m(outputs["arch"]),
        names=MacNames(
            hostname=parse_hostname(outputs["hostname"]),
            local_host_name=parse_scutil_get(outputs["local_host_name"]),
            host_name=parse_scutil_get(outputs["host_name"]),
            computer_name=parse_scutil_get(outputs["computer_name"]),
        ),
    )


# ---- the lifecycle workflows' facts (uninstall, reconfigure, start/stop/restart, logs) -------------------
@dataclass(frozen=True)
class ClientFacts:
    """MacFacts plus what removing the client needs: the receipt's location and file list, and which of
    KNOWN_PATHS exist. `logs` (the logs workflow's tails, by name) is carried but never serialized: the
    runner stores `as_json()` as the device's facts."""

    mac: MacFacts
    pkg_location: str | None
    pkg_files: tuple[str, ...]
    present: tuple[str, ...]
    logs: Mapping[str, str] = field(default_factory=dict)

    @property
    def installed(self) -> bool:
        """Anything of the client is on the Mac: a receipt, a known file, or its launchd job."""
        return self.mac.client_version is not None or bool(self.present) or self.mac.job.loaded

    def as_json(self) -> dict[str, Any]:
        return {
            **self.mac.as_json(),
            "pkg_location": self.pkg_location,
            "pkg_files": list(self.pkg_files),
            "present": list(self.present),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClientFacts:
        own = ("pkg_location", "pkg_files", "present")
        missing = [k for k in own if k not in data]
        if missing:
            raise ValueError(f"ClientFacts: missing {missing}")
        return cls(
            mac=MacFacts.from_json({k: v for k, v in data.items() if k not in own}),
            pkg_location=data["pkg_location"],
            pkg_files=tuple(data["pkg_files"]),
            present=tuple(data["present"]),
        )


def client_fact_commands() -> tuple[tuple[str, Command], ...]:
    return (
        *mac_fact_commands(),
        ("pkg_files", _ro("pkgutil", "--only-files", "--files", PKG_ID)),
        ("present", _ro("ls", "-1d", *KNOWN_PATHS)),
    )


def parse_client_facts(outputs: Mapping[str, ProbeOutput]) -> ClientFacts:
    require(outputs, client_fact_commands())
    return ClientFacts(
        mac=parse_mac_facts(outputs),
        pkg_location=parse_pkg_location(outputs["pkg_info"]),
        pkg_files=parse_pkg_files(outputs["pkg_files"]),
        present=parse_ls_d(outputs["present"]),
    )


def facts_to_json(value: object) -> Any:
    """A parser's result as JSON (for the parser fixtures)."""
    if isinstance(value, tuple):
        return [facts_to_json(v) for v in value]
    as_json = getattr(value, "as_json", None)
    if callable(as_json):
        return as_json()
    return value
