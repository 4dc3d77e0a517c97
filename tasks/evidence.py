"""Evidence that the 1E Client reached its Switch, without trusting any one wording. Pure.

Two signals, either is enough:
- the log: a line the client wrote after this run (re)started it that matches a *connected* pattern (regexes,
  case-insensitive, settings `[verify] connected_patterns`); a line matching an *error* pattern is failure
  evidence. The latest evidence line wins (an error followed by a connect is connected), and a line matching
  both is an error ("not connected to the Switch" must not read as connected).
- the socket: the client's process holds an ESTABLISHED TCP connection to a port of the configured Switch
  (`lsof -nP -a -p PID -iTCP -sTCP:ESTABLISHED -Fn`). With -n lsof prints addresses, not names, so the host is
  compared only when the Switch is given as an IP literal; otherwise the port must match. A current socket
  beats an older error line.

Patterns run twice: on the Mac in `grep -E -i` (to end the verify poll early) and here with Python's `re`
(the verdict). So they must be POSIX extended regexes that mean the same in both: `validate_patterns`
refuses Python-only syntax.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from tasks.model import FactsError, ProbeOutput

# Broad on purpose: any sensible wording of "connected to the Switch" (macsim's "Connected to Switch h:p as
# n", "Connection to switch h:p established", "Switch connection established", "registered with the Switch").
DEFAULT_CONNECTED_PATTERNS: tuple[str, ...] = (
    "connected (to|with) .*switch",
    "switch.*(connection )?(established|connected)",
    "(registered|authenticated) (with|to|at) .*switch",
)
# Failure wording: an ERROR/FATAL level or word, failed/failure, refusals and trust problems.
DEFAULT_ERROR_PATTERNS: tuple[str, ...] = (
    "(^|[^a-z])(error|fatal|critical)([^a-z]|$)",
    "(^|[^a-z])fail(ed|ure|s)?([^a-z]|$)",
    "(not connect(ed|ing)|disconnected|refused|denied|not trusted|untrusted)",
    "(unable to|cannot|could not|timed out)",
)

# Python-only regex syntax that BSD `grep -E` reads differently (or not at all).
_NOT_ERE = re.compile(r"\(\?|\\[dDwWsSbBAZzQE0-9]|[*+?}]\?|\[\[:")


class PatternError(ValueError):
    """A connected/error pattern that cannot be used; the message names it and says why."""


def validate_patterns(kind: str, patterns: Iterable[str]) -> tuple[str, ...]:
    """The patterns as a tuple; PatternError for none at all, an empty one, one Python cannot compile, one
    with Python-only syntax, or one with a line break (they travel as one argv word each)."""
    out = tuple(patterns)
    if not out:
        raise PatternError(f"{kind}: at least one pattern is needed")
    for p in out:
        if not p or "\n" in p or "\r" in p or "\0" in p:
            raise PatternError(f"{kind}: empty pattern or one with a line break: {p!r}")
        try:
            re.compile(p, re.IGNORECASE)
        except re.error as e:
            raise PatternError(f"{kind}: {p!r} is not a valid regex: {e}") from None
        bad = _NOT_ERE.search(p)
        if bad:
            raise PatternError(
                f"{kind}: {p!r} uses {bad.group(0)!r}, which `grep -E` on the Mac does not read like Python; "
                "write a POSIX extended regex (e.g. [0-9] for \\d, ([^a-z]|$) for \\b, (a|b) for (?:a|b))"
            )
    return out


@dataclass(frozen=True)
class VerifyRules:
    """The connected and error patterns (validated). `alternation` joins them for one `grep -E -e`."""

    connected: tuple[str, ...] = DEFAULT_CONNECTED_PATTERNS
    errors: tuple[str, ...] = DEFAULT_ERROR_PATTERNS
    # compiled once: every log line is matched against every pattern, several times per plan
    _connected_re: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _errors_re: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "connected", validate_patterns("connected_patterns", self.connected))
        object.__setattr__(self, "errors", validate_patterns("error_patterns", self.errors))
        object.__setattr__(self, "_connected_re", tuple(re.compile(p, re.IGNORECASE) for p in self.connected))
        object.__setattr__(self, "_errors_re", tuple(re.compile(p, re.IGNORECASE) for p in self.errors))

    @staticmethod
    def alternation(patterns: tuple[str, ...]) -> str:
        return "|".join(f"({p})" for p in patterns)

    def is_error(self, line: str) -> bool:
        return any(r.search(line) for r in self._errors_re)

    def is_connected(self, line: str) -> bool:
        return any(r.search(line) for r in self._connected_re)


DEFAULT_RULES = VerifyRules()


@dataclass(frozen=True)
class LogEvidence:
    """The latest line that matched a pattern: `line` with `error` True (failure) or False (connected);
    both None when no line matched."""

    line: str | None = None
    error: bool | None = None

    @property
    def connected(self) -> bool:
        return self.line is not None and self.error is False


def log_evidence(lines: Iterable[str], rules: VerifyRules = DEFAULT_RULES) -> LogEvidence:
    """The latest evidence line (an error pattern wins over a connected one on the same line)."""
    found = LogEvidence()
    for line in lines:
        if rules.is_error(line):
            found = LogEvidence(line.strip(), True)
        elif rules.is_connected(line):
            found = LogEvidence(line.strip(), False)
    return found


# ---- the socket signal ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


_ENDPOINT = re.compile(r"^(?:\[(?P<v6>[^\]]*)\]|(?P<host>[^:\[\]]*)):(?P<port>\d+)$")


def _endpoint(text: str) -> Endpoint | None:
    m = _ENDPOINT.match(text.strip())
    if m is None:
        return None
    return Endpoint(m.group("v6") if m.group("v6") is not None else m.group("host"), int(m.group("port")))


def parse_lsof_fn(out: ProbeOutput) -> tuple[Endpoint, ...]:
    """`lsof -nP -a -p PID -iTCP -sTCP:ESTABLISHED -Fn`: the remote end of each listed connection.

    Field output (lsof(8) "OUTPUT FOR OTHER PROGRAMS", lsof-org/lsof Lsof.8): one field per line, its first
    character the field id; `p` (process ID) and `f` (file descriptor) are always selected, `n` is the file
    name, for a connected socket `LOCAL->REMOTE` with -n/-P numeric `addr:port` ([v6]:port). lsof exits 1
    when it lists nothing (DIAGNOSTICS: "failure to locate ... Internet addresses or files"): no connection.
    """
    if out.exit_status is None:
        raise FactsError("lsof: the probe did not run to its end")
    found: list[Endpoint] = []
    for line in out.stdout.splitlines():
        if not line.startswith("n") or "->" not in line:
            continue
        remote = _endpoint(line[1:].split("->", 1)[1])
        if remote is not None:
            found.append(remote)
    return tuple(found)


def switch_endpoints(switch: str | None) -> tuple[tuple[str, int], ...]:
    """(host, port) of each `host:port` of a Switch setting ("a:4000;b:4000"); malformed entries skipped."""
    out: list[tuple[str, int]] = []
    for item in (switch or "").split(";"):
        host, _, port = item.strip().rpartition(":")
        if host and port.isdigit():
            out.append((host.strip("[]"), int(port)))
    return tuple(out)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def socket_to_switch(endpoints: Iterable[Endpoint], switch: str | None) -> Endpoint | None:
    """The first connection whose remote end is a Switch entry: same port, and same address when the entry
    is an IP literal (a name cannot be compared: lsof -n prints addresses)."""
    wanted = switch_endpoints(switch)
    for e in endpoints:
        for host, port in wanted:
            if e.port == port and (not _is_ip(host) or ipaddress.ip_address(host) == _ip(e.host)):
                return e
    return None


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def socket_regex(switch: str | None) -> str:
    """An ERE the Mac's grep uses on `lsof -Fn` output to spot a connection to a Switch port ("" for none)."""
    ports = sorted({str(p) for _, p in switch_endpoints(switch)})
    return f"->.*:({'|'.join(ports)})$" if ports else ""
