"""The System keychain's identities, certificates and admin trust settings, from `security`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tasks.facts.common import FactsError, finished
from tasks.model import ProbeOutput


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


_IDENTITY_ROW = re.compile(r'^\s*\d+\)\s+([0-9A-Fa-f]{40})\s+"(.*)"(?:\s+\((\S+)\))?\s*$')


def parse_find_identity(out: ProbeOutput) -> tuple[Identity, ...]:
    """`security find-identity KEYCHAIN` (all identities, not only valid ones): one Identity per SHA-1 of
    the "Matching identities" lists; valid when it also appears under "Valid identities only"."""
    finished(out, "security find-identity")
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
    if finished(out, "security find-certificate") != 0:
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
    if finished(out, "security dump-trust-settings") != 0:
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
