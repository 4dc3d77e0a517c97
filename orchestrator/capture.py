"""Turning one real Mac's probe outputs into shareable parser fixtures (`orchestrate facts --capture`).

`Redaction` replaces what identifies the Mac, its users or its organisation by placeholders, consistently:
the same value always gets the same placeholder within a capture (case kept: `Mac-01`/`mac-01` become
`Host1`/`host1`), so parsers still see equal things as equal, and a placeholder has the original's shape
(a SHA-1 stays 40 hex digits, an address stays an address) so every parser still reads it:

- host names (hostname, HostName, LocalHostName, ComputerName, the client certificate's name, the conf's
  Switch and Background Channel hosts): the first label -> `host<N>`, the domain -> `domain<N>.example`;
- the hardware serial number -> `SERIAL<N>`, hardware and other UUIDs -> `00000000-0000-0000-0000-<N>`;
- user names (the SSH login, sudo, `/Users/<name>` homes) -> `user<N>`;
- hex runs of 16+ digits (certificate SHA-1/SHA-256, serial-number and name blobs) -> `000…<N>`, same length;
- IPv4 -> 192.0.2.N (RFC 5737), IPv6 -> 2001:db8::N (RFC 3849), MAC -> 00:00:5e:00:53:NN (RFC 7042);
  dotted version numbers (`version: 8.1.2.65`) are not addresses and are kept.

Pure: no SSH (workers.capture gathers the outputs), only the fixture files are written here."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from tasks.facts import facts_to_json
from tasks.model import ProbeOutput
from tasks.probes import ALSO_PARSED_AS, PARSERS, fixture_name

# accounts every Mac has: naming them identifies nobody, and masking "root" would mangle tool output
_SYSTEM_USERS = {"root", "daemon", "nobody", "wheel", "staff", "admin_group", "Shared", "Guest"}
_NOT_HOSTS = {"localhost", "local", ""}
_NAME_EDGE_L = r"(?:(?<![A-Za-z0-9])|(?<=\\[0-7]{3}))"  # `security` prints octal escapes before names
_NAME_EDGE_R = r"(?![A-Za-z0-9])"
_HEX_RUN = re.compile(r"(?<![0-9A-Za-z])(0x)?([0-9A-Fa-f]{16,})(?![0-9A-Za-z])|(?<=0x)([0-9A-Fa-f]{16,})")
_UUID = re.compile(r"(?<![0-9A-Fa-f-])[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}(?![0-9A-Fa-f-])")
_IPV4 = re.compile(r"(?<![\d.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
_IPV6 = re.compile(
    r"(?<![0-9A-Fa-f:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%[A-Za-z0-9]+)?(?![0-9A-Fa-f:])"
)
_MAC = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}(?![0-9A-Fa-f:])")
_VERSION_BEFORE = re.compile(r"version\W{0,3}v?$", re.I)
_HOME = re.compile(r"/Users/([^/\s\"':,;()\[\]]+)")
_PLACEHOLDER_FORMS = {
    "host": "host{n}",
    "domain": "domain{n}.example",
    "computer": "Computer {n}",
    "user": "user{n}",
    "serial": "SERIAL{n}",
}


def _doc_ipv4(n: int) -> str:
    """The n-th address of the documentation blocks (RFC 5737)."""
    block = ("192.0.2", "198.51.100", "203.0.113")[min((n - 1) // 254, 2)]
    return f"{block}.{(n - 1) % 254 + 1}"


def _like(original: str, placeholder: str) -> str:
    """The placeholder in the original's case: all lower, all upper, else capitalised."""
    if original.islower():
        return placeholder.lower()
    if original.isupper():
        return placeholder.upper()
    return placeholder[:1].upper() + placeholder[1:]


@dataclass
class Redaction:
    """The placeholders of one capture. `add_*` register what the capture found out about the Mac;
    `apply` replaces them (and every hash, UUID and address) in a text."""

    _named: dict[str, tuple[str, str]] = field(default_factory=dict)  # lower(value) -> (kind, placeholder)
    _counts: dict[str, int] = field(default_factory=dict)
    _generic: dict[str, str] = field(default_factory=dict)  # lower(value) -> placeholder (hex, uuid, ip, mac)
    _keep: set[str] = field(default_factory=set)  # dotted versions that look like IPv4 addresses
    _pattern: re.Pattern[str] | None = None

    def _next(self, kind: str) -> int:
        self._counts[kind] = self._counts.get(kind, 0) + 1
        return self._counts[kind]

    def _add(self, kind: str, value: str) -> None:
        value = value.strip()
        if len(value) < 2 or value.lower() in self._named:
            return
        self._named[value.lower()] = (kind, _PLACEHOLDER_FORMS[kind].format(n=self._next(kind)))
        self._pattern = None

    def add_host(self, name: str | None) -> None:
        """A host name: its first label and its domain (a `.local` name's domain is kept)."""
        if not name:
            return
        name = name.strip().rstrip(".")
        if _IPV4.fullmatch(name) or ":" in name:
            return  # an address: the address rules replace it
        host, _, domain = name.partition(".")
        if host.lower() not in _NOT_HOSTS:
            self._add("host", host)
        if domain and domain.lower() not in _NOT_HOSTS:
            self._add("domain", domain)

    def add_computer_name(self, name: str | None) -> None:
        if name:
            self._add("computer", name)

    def add_user(self, name: str | None) -> None:
        if name and name not in _SYSTEM_USERS and not name.startswith("_"):
            self._add("user", name)

    def add_serial(self, serial: str | None) -> None:
        if serial:
            self._add("serial", serial)

    def keep(self, value: str) -> None:
        """A dotted version that must not be taken for an IPv4 address."""
        self._keep.add(value)

    def learn(self, outputs: Iterable[str]) -> None:
        """What the outputs themselves reveal: home directories' user names, versions that look like
        addresses (`version: 8.1.2.65`)."""
        for text in outputs:
            for m in _HOME.finditer(text):
                self.add_user(m.group(1))
            for m in re.finditer(r"(?i)version\W{0,3}v?(\d+(?:\.\d+){3})", text):
                self.keep(m.group(1))

    def _named_pattern(self) -> re.Pattern[str] | None:
        if not self._named:
            return None
        if self._pattern is None:
            alts = "|".join(re.escape(v) for v in sorted(self._named, key=len, reverse=True))
            self._pattern = re.compile(f"{_NAME_EDGE_L}(?:{alts}){_NAME_EDGE_R}", re.I)
        return self._pattern

    def _generic_for(self, kind: str, value: str, make: Callable[[int], str]) -> str:
        key = f"{kind}:{value.lower()}"
        if key not in self._generic:
            self._generic[key] = make(self._next(kind))
        return self._generic[key]

    def _hex(self, m: re.Match[str]) -> str:
        prefix, digits = (m.group(1) or ""), (m.group(2) or m.group(3))
        if not prefix and not m.group(3) and digits.isdigit():
            return m.group(0)  # a long decimal number, not a hash
        placeholder = self._generic_for("hex", digits, lambda n: f"{n:0{len(digits)}X}")
        return prefix + (placeholder.lower() if digits.lower() == digits else placeholder)

    def _ipv4(self, m: re.Match[str]) -> str:
        text, octets = m.group(0), [int(x) for x in m.groups()]
        before = m.string[max(0, m.start() - 12) : m.start()]
        if (
            any(o > 255 for o in octets)
            or text in self._keep
            or _VERSION_BEFORE.search(before)
            or octets[0] in (0, 127)
            or octets[0] == 255
        ):
            return text
        return self._generic_for("ipv4", text, _doc_ipv4)

    def _ipv6(self, m: re.Match[str]) -> str:
        text = m.group(0)
        try:
            addr = ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            return text
        if addr.is_loopback or addr.is_unspecified:
            return text
        zone = text[len(text.split("%", 1)[0]) :]
        return self._generic_for("ipv6", text, lambda n: f"2001:db8::{n:x}") + zone

    def apply(self, text: str) -> str:
        """The text with every registered value and every hash, UUID and address replaced."""
        pattern = self._named_pattern()
        if pattern is not None:

            def named(m: re.Match[str]) -> str:
                return _like(m.group(0), self._named[m.group(0).lower()][1])

            text = pattern.sub(named, text)
        text = _UUID.sub(
            lambda m: self._generic_for("uuid", m.group(0), lambda n: f"00000000-0000-0000-0000-{n:012d}"),
            text,
        )
        text = _MAC.sub(
            lambda m: self._generic_for("mac", m.group(0), lambda n: f"00:00:5e:00:53:{n:02x}"), text
        )
        text = _IPV6.sub(self._ipv6, text)
        text = _HEX_RUN.sub(self._hex, text)
        return _IPV4.sub(self._ipv4, text)

    def kinds(self) -> dict[str, int]:
        """How many values of each kind were replaced (for the capture's summary; never the values)."""
        return dict(sorted(self._counts.items()))

    def leaks(self, text: str) -> list[str]:
        """The kinds of registered values still found in text, also hex-encoded (a certificate's name
        inside a DER blob): empty when the redaction held."""
        low = text.lower()
        found = []
        for value, (kind, _) in self._named.items():
            if len(value) < 4:
                continue
            if value in low or value.encode().hex() in low:
                found.append(kind)
        return sorted(set(found))


# ---- what the Mac reveals about itself ---------------------------------------------------------------------
def _value(out: ProbeOutput | None) -> str | None:
    if out is None or out.exit_status != 0:
        return None
    return out.stdout.strip() or None


def _ioreg(out: ProbeOutput | None, key: str) -> str | None:
    if out is None:
        return None
    m = re.search(rf'"{key}" = "([^"]*)"', out.stdout)
    return m.group(1) if m else None


def redaction_for(
    outputs: Mapping[str, ProbeOutput], identity: Mapping[str, ProbeOutput], users: Iterable[str] = ()
) -> Redaction:
    """A Redaction that knows this Mac: its names (from the fact probes and the identity probes), its
    serial number and hardware UUID (`ioreg`), the users given (SSH login), the conf's hosts and the
    identities' labels."""
    r = Redaction()
    every = {**outputs, **identity}
    hosts = ("hostname", "local_host_name", "host_name", "identity:host_name", "identity:local_host_name")
    for name in hosts:
        r.add_host(_value(every.get(name)))
    for name in ("computer_name", "identity:computer_name"):
        r.add_computer_name(_value(every.get(name)))
    ioreg = every.get("identity:ioreg")
    r.add_serial(_ioreg(ioreg, "IOPlatformSerialNumber"))
    uuid = _ioreg(ioreg, "IOPlatformUUID")
    if uuid:
        r.apply(uuid)  # numbered first: the hardware UUID is 00000000-0000-0000-0000-000000000001
    conf = every.get("conf")
    if conf is not None and conf.exit_status == 0:
        for m in re.finditer(r"(?im)^\s*(?:Switch|BackgroundChannelUrl)\s*=\s*(.+)$", conf.stdout):
            for host in re.findall(r"(?:https?://)?([A-Za-z0-9.-]+\.[A-Za-z0-9-]+)", m.group(1)):
                r.add_host(host)
    ident = every.get("identities")
    if ident is not None:
        for label in re.findall(r'^\s*\d+\)\s+[0-9A-Fa-f]{40}\s+"([^"]+)"', ident.stdout, re.M):
            if re.fullmatch(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*", label):
                r.add_host(label)
    for user in users:
        r.add_user(user)
    r.learn(o.stdout + o.stderr for o in every.values())
    return r


# ---- fixtures ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Written:
    path: Path
    probe: str
    parsed: bool  # the parser read the (redacted) output; False: `error` says why (or there is no parser)
    error: str | None = None


def source_line(outputs: Mapping[str, ProbeOutput], today: date) -> str:
    """`captured on macOS 14.5 23F79, 2026-12-06 (...)`, the version read from this capture's sw_vers."""
    sw = outputs.get("sw_vers")
    text = sw.stdout if sw is not None else ""
    version = re.search(r"^ProductVersion:\s*(\S+)", text, re.M)
    build = re.search(r"^BuildVersion:\s*(\S+)", text, re.M)
    mac = " ".join(x.group(1) for x in (version, build) if x) or "(unknown version: sw_vers failed)"
    return (
        f"captured on macOS {mac}, {today.isoformat()} (orchestrate facts --capture; host names, serial, "
        "UUIDs, users, hashes and addresses redacted)"
    )


def redact_output(out: ProbeOutput, r: Redaction) -> ProbeOutput:
    return ProbeOutput(
        tuple(r.apply(w) for w in out.argv), out.exit_status, r.apply(out.stdout), r.apply(out.stderr)
    )


def fixture(out: ProbeOutput, source: str, parser_name: str) -> tuple[dict[str, Any], str | None]:
    """One fixture in the parser fixtures' format; "expected" is what the parser reads from it (left out,
    with the error returned, when the parser fails or the probe has none)."""
    data: dict[str, Any] = {
        "source": source,
        "argv": list(out.argv),
        "exit_status": out.exit_status,
        "stdout": out.stdout,
        "stderr": out.stderr,
    }
    parser = PARSERS.get(parser_name)
    if parser is None:
        return data, f"no parser for probe {parser_name!r} (add it to tasks/probes.py PARSERS)"
    try:
        data["expected"] = facts_to_json(parser(out))
    except ValueError as e:
        return data, f"{type(e).__name__}: {e}"
    return data, None


def write_fixtures(
    directory: Path, case: str, outputs: Mapping[str, ProbeOutput], r: Redaction, today: date
) -> list[Written]:
    """DIR/<probe>/<case>.json for every probe output (redacted), as tests/tasks/fixtures/facts/ holds
    them. Raises ValueError, writing nothing, when a registered value survived the redaction."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", case):
        raise ValueError(f"case name {case!r}: use letters, digits, '.', '_' or '-'")
    source = source_line(outputs, today)
    redacted = {name: redact_output(out, r) for name, out in outputs.items()}
    for name, out in redacted.items():
        left = r.leaks(" ".join(out.argv) + out.stdout + out.stderr)
        if left:
            kinds = ", ".join(left)
            raise ValueError(f"probe {name}: {kinds} still readable after redaction; nothing written")
    written: list[Written] = []
    for name, out in redacted.items():
        for parser_name in (fixture_name(name), *ALSO_PARSED_AS.get(name, ())):
            data, error = fixture(out, source, parser_name)
            path = directory / parser_name / f"{case}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=1) + "\n")
            written.append(Written(path, parser_name, error is None, error))
    return written
