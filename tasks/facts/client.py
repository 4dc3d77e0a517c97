"""The 1E Client's receipt, files, configuration, launchd job, log and sockets, each from its probe."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from tasks.evidence import DEFAULT_RULES, VerifyRules, log_evidence, parse_lsof_fn
from tasks.facts.common import START_LINE, FactsError, finished
from tasks.model import ProbeOutput


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
    wording has one). connected: its latest evidence line (tasks.evidence) says connected, by `rules`: the
    patterns of settings [verify] when the facts were read for a run, so a run judges the log as its verify
    step does."""

    lines: tuple[str, ...]
    rules: VerifyRules = field(default=DEFAULT_RULES, compare=False, repr=False)

    @cached_property
    def connected(self) -> bool:
        # judged once: the planners ask for it many times per device (decide() runs in every step)
        return log_evidence(self.lines, self.rules).connected

    def as_json(self) -> list[str]:
        return list(self.lines)


def parse_pkg_info(out: ProbeOutput) -> str | None:
    """`pkgutil --pkg-info ID`: the receipt's version, or None when there is no receipt."""
    if finished(out, "pkgutil --pkg-info") != 0:
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
    if finished(out, "pkgutil --files") != 0:
        if "No receipt" in out.stderr or "No receipt" in out.stdout:
            return ()
        raise FactsError(f"pkgutil --files failed: {out.stderr.strip()}")
    return tuple(line for line in out.stdout.splitlines() if line.strip())


def parse_conf(out: ProbeOutput) -> dict[str, str] | None:
    """`cat CONF`: Key -> value of every `Key=Value` line (comments skipped; last wins), None when absent."""
    if finished(out, "cat conf") != 0:
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
    if finished(out, "launchctl print") != 0:
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


def parse_log_tail(out: ProbeOutput, rules: VerifyRules = DEFAULT_RULES) -> LogBlock | None:
    """`tail -n 200 LOG`: the lines from the last "1E Client starting" on (that line excluded), or every line
    when the tail holds no start line; None when there is no log (or it is empty)."""
    if finished(out, "tail log") != 0:
        return None
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    if not lines:
        return None
    starts = [i for i, line in enumerate(lines) if START_LINE in line]
    return LogBlock(tuple(lines[starts[-1] + 1 :] if starts else lines), rules)


def parse_client_sockets(out: ProbeOutput) -> tuple[str, ...]:
    """The client's established TCP connections' remote ends ("addr:port"), from `lsof -Fn` (see
    tasks.evidence.parse_lsof_fn); () when the client does not run or holds none."""
    finished(out, "lsof")
    return tuple(str(e) for e in parse_lsof_fn(out))
