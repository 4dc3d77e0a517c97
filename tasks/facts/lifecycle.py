"""`ClientFacts`: what the lifecycle workflows (uninstall, reconfigure, start/stop/restart, logs) decide
from: MacFacts plus the receipt's location and files and which known paths exist."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tasks.evidence import DEFAULT_RULES, VerifyRules
from tasks.facts.client import parse_pkg_files, parse_pkg_location
from tasks.facts.common import KNOWN_PATHS, PKG_ID, require, ro
from tasks.facts.mac import MacFacts, mac_fact_commands, parse_mac_facts
from tasks.facts.system import parse_ls_d
from tasks.model import Command, ProbeOutput


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
        ("pkg_files", ro("pkgutil", "--only-files", "--files", PKG_ID)),
        ("present", ro("ls", "-1d", *KNOWN_PATHS)),
    )


def parse_client_facts(outputs: Mapping[str, ProbeOutput], rules: VerifyRules = DEFAULT_RULES) -> ClientFacts:
    require(outputs, client_fact_commands())
    return ClientFacts(
        mac=parse_mac_facts(outputs, rules=rules),
        pkg_location=parse_pkg_location(outputs["pkg_info"]),
        pkg_files=parse_pkg_files(outputs["pkg_files"]),
        present=parse_ls_d(outputs["present"]),
    )
