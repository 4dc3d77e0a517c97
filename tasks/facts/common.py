"""The names and paths a probe reads on a Mac, the error a parser raises, and helpers every parser uses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
# `launchctl print system/LABEL` on stdin -> the running job's pid (empty when it has none); shared by the
# facts' socket probe and verify's poll
PID_FILTER = "grep -E '^[\t ]*pid = [0-9]+$' | head -n 1 | tr -cd 0123456789"


def finished(out: ProbeOutput, what: str) -> int:
    """The probe's exit status; FactsError when it did not run to its end."""
    if out.exit_status is None:
        raise FactsError(f"{what}: the probe did not run to its end")
    return out.exit_status


def ro(*argv: str) -> Command:
    """A read-only probe command."""
    return Command(tuple(argv), mutating=False)


def require(outputs: Mapping[str, ProbeOutput], probes: tuple[tuple[str, Command], ...]) -> None:
    missing = [name for name, _ in probes if name not in outputs]
    if missing:
        raise FactsError(f"missing probe outputs: {', '.join(missing)}")


def facts_to_json(value: object) -> Any:
    """A parser's result as JSON (for the parser fixtures)."""
    if isinstance(value, tuple):
        return [facts_to_json(v) for v in value]
    as_json = getattr(value, "as_json", None)
    if callable(as_json):
        return as_json()
    return value
