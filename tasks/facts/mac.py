"""`MacFacts` (what the install planners decide from) and `HostFacts` (`inventory probe`): their probes and
the parsing of one round trip's outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tasks.evidence import DEFAULT_RULES, Endpoint, VerifyRules, socket_to_switch
from tasks.facts.client import (
    LaunchdJob,
    LogBlock,
    parse_client_sockets,
    parse_conf,
    parse_launchctl_print,
    parse_log_tail,
    parse_pkg_info,
)
from tasks.facts.common import (
    BINARY,
    CLIENT_LOG,
    CONF,
    LABEL,
    LOG_TAIL_LINES,
    LSOF,
    PID_FILTER,
    PKG_ID,
    SYSTEM_KEYCHAIN,
    require,
    ro,
)
from tasks.facts.keychain import (
    Identity,
    KeychainCert,
    TrustEntry,
    parse_dump_trust_settings,
    parse_find_certificate,
    parse_find_identity,
)
from tasks.facts.system import (
    parse_df_k,
    parse_hostname,
    parse_rosetta,
    parse_scutil_get,
    parse_shasum,
    parse_sw_vers,
    parse_uname_m,
)
from tasks.hostnames import MacNames
from tasks.model import Command, ProbeOutput


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
    f'pid=$(launchctl print "system/$1" 2>/dev/null | {PID_FILTER})\n'
    f'if [ -n "$pid" ]; then {LSOF} -nP -a -p "$pid" -iTCP -sTCP:ESTABLISHED -Fn; fi\n'
    "exit 0\n"
)


def mac_fact_commands() -> tuple[tuple[str, Command], ...]:
    """The read-only probes behind `MacFacts` (except the DMG cache, which depends on install params)."""
    return (
        ("sw_vers", ro("sw_vers")),
        ("arch", ro("uname", "-m")),
        ("x86_64", ro("arch", "-x86_64", "/usr/bin/true")),
        ("hostname", ro("hostname")),
        ("local_host_name", ro("scutil", "--get", "LocalHostName")),
        ("host_name", ro("scutil", "--get", "HostName")),
        ("computer_name", ro("scutil", "--get", "ComputerName")),
        ("pkg_info", ro("pkgutil", "--pkg-info", PKG_ID)),
        ("binary_sha256", ro("shasum", "-a", "256", BINARY)),
        ("conf", ro("cat", CONF)),
        ("launchd", ro("launchctl", "print", f"system/{LABEL}")),
        ("client_sockets", ro("/bin/sh", "-c", SOCKETS_SCRIPT, "client-sockets", LABEL)),
        ("identities", ro("security", "find-identity", SYSTEM_KEYCHAIN)),
        ("certificates", ro("security", "find-certificate", "-a", "-Z", SYSTEM_KEYCHAIN)),
        ("admin_trust", ro("security", "dump-trust-settings", "-d")),
        ("df", ro("df", "-k", "/")),
        ("client_log", ro("tail", "-n", str(LOG_TAIL_LINES), CLIENT_LOG)),
    )


def parse_mac_facts(
    outputs: Mapping[str, ProbeOutput], dmg_cached: bool = False, rules: VerifyRules = DEFAULT_RULES
) -> MacFacts:
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
        log_block=parse_log_tail(outputs["client_log"], rules),
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
