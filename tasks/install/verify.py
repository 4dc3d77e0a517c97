"""The verify step: ONE exec on the Mac polls the client's evidence (tasks.evidence) and the judge reads it.

The poll is a constant POSIX sh script (`POLL_SCRIPT`); its data arrive as positional parameters. Each round
it reads `launchctl print`, the client's sockets (`lsof`, PID from launchctl) and the client log written
since the start step's mark (`stat -f %z` before the (re)start; `tail -c +N` reads from byte N; a smaller
size means the log rotated: the whole new file is read). It ends early when connected or failed evidence
appears (a `grep -E -i` of the same patterns), else after its last round, and then prints the final probes
between markers. The controller's judge re-reads those with Python's `re` and decides; the Mac's early stop
only saves time.

Without a mark (nothing was (re)started: the client ran and was connected at facts time) the last
`LOG_TAIL_LINES` lines are read instead.

macOS tools, as their man pages document them: stat(1) `-f %z` prints st_size in bytes (BSD stat; GNU's is
`-c`); tail(1) `-c +N` starts at byte N counting from 1 (so the mark's size + 1 is the first new byte);
lsof(8) field output, see tasks.evidence.parse_lsof_fn; grep(1) `-E -i -e PATTERN -q`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from tasks.evidence import (
    DEFAULT_RULES,
    Endpoint,
    VerifyRules,
    log_evidence,
    parse_lsof_fn,
    socket_regex,
    socket_to_switch,
)
from tasks.facts import (
    CLIENT_LOG,
    LABEL,
    LOG_TAIL_LINES,
    LSOF,
    PID_FILTER,
    PKG_ID,
    FactsError,
    LaunchdJob,
    MacFacts,
    parse_launchctl_print,
    parse_pkg_info,
)
from tasks.install.params import InstallParams
from tasks.model import Command, FailureReason, ProbeOutput, VerifyVerdict

NOT_FOUND = 113  # `launchctl print` of a service that is not loaded
POLL_NAME = "macfleet-verify"  # $0 of the poll script: how the runner and the judge recognise it
MARK = "@@macfleet-verify"
MAX_ROUNDS = 600

# The log's size before the (re)start: the start step runs it right before launchctl, in the same exec, so
# what the client writes afterwards is judged and nothing before it. Not in the facts exec: install.sh starts
# the client itself before the identity is imported, and that start's error lines must not count. A missing
# log is size 0 (stat exits 1; the runner reads an empty stdout as 0).
LOG_MARK = Command(("stat", "-f", "%z", CLIENT_LOG), mutating=False, ok_codes=(0, 1))

# $1 label, $2 log, $3 mark (bytes; "" = none), $4 mark+1, $5 pause (s), $6 rounds, $7 connected ERE,
# $8 error ERE, $9 socket ERE ("" = no Switch known); the 10th, the Switch, is for the judge only.
# No arithmetic, functions, `case` or `break`: the round count is the length of a growing word. A daemon seen
# stopped after running in two rounds in a row counts as exited (a `kickstart -k` shows it briefly). The
# report is one printf: one write, so one packet from sshd rather than seven (the controller's unit of cost).
POLL_SCRIPT = r"""label=$1; log=$2; off=$3; from=$4; pause=$5; rounds=$6; conn=$7; errs=$8; sockre=$9
verdict=pending; stopped=; ticks=; job=; rc=; socks=; size=; new=
while [ "$verdict" = pending ] && [ "${#ticks}" -lt "$rounds" ]; do
  if [ -n "$ticks" ]; then sleep "$pause"; fi
  ticks="${ticks}x"
  job=$(launchctl print "system/$label" 2>&1); rc=$?
  pid=$(printf '%s\n' "$job" | """ + PID_FILTER + r""")
  socks=
  if [ -n "$pid" ]; then
    socks=$(""" + LSOF + r""" -nP -a -p "$pid" -iTCP -sTCP:ESTABLISHED -Fn 2>/dev/null)
  fi
  size=$(stat -f %z "$log" 2>/dev/null)
  if [ -z "$off" ]; then
    new=$(tail -n """ + str(LOG_TAIL_LINES) + r""" "$log" 2>/dev/null)
  elif [ -n "$size" ] && [ "$size" -lt "$off" ]; then
    new=$(cat "$log" 2>/dev/null)
  else
    new=$(tail -c "+$from" "$log" 2>/dev/null)
  fi
  last=$(printf '%s\n' "$new" | grep -E -i -e "$conn" -e "$errs" | tail -n 1)
  if [ "$rc" != 0 ]; then
    verdict=not-loaded
  elif [ -n "$last" ] && printf '%s\n' "$last" | grep -E -i -q -e "$errs"; then
    verdict=error
  elif [ -n "$pid" ] && [ -n "$sockre" ] && printf '%s\n' "$socks" | grep -E -q -e "$sockre"; then
    verdict=socket
  elif [ -n "$pid" ] && [ -n "$last" ]; then
    verdict=logged
  elif [ -z "$pid" ] && printf '%s\n' "$job" | grep -q 'last exit code = [0-9]'; then
    if [ -n "$stopped" ]; then verdict=exited; fi
    stopped=yes
  else
    stopped=
  fi
  printf '%s round %s %s\n' "@@macfleet-verify" "${#ticks}" "$verdict"
done
m=@@macfleet-verify
printf '%s launchd %s\n%s\n%s lsof\n%s\n%s log %s\n%s\n%s end %s\n' \
  "$m" "$rc" "$job" "$m" "$socks" "$m" "$size" "$new" "$m" "$verdict"
"""


def parse_log_mark(out: ProbeOutput) -> int:
    """`stat -f %z LOG`: the log's size in bytes (stat(1): %z is st_size, printed as a bare decimal); 0 when
    the log does not exist yet (stat exits 1, "No such file or directory")."""
    if out.exit_status is None:
        raise FactsError("stat -f %z: the probe did not run to its end")
    size = out.stdout.strip()
    if out.exit_status != 0:
        return 0
    if not size.isdigit():
        raise FactsError(f"stat -f %z: not a size: {out.stdout!r}")
    return int(size)


@dataclass(frozen=True)
class PollSpec:
    """What one verify poll looks for: the Switch (socket signal), the rules (log signal), the log mark
    (None: no (re)start in this run), and its bounds: `rounds` probes `pause` seconds apart."""

    switch: str | None
    rules: VerifyRules = DEFAULT_RULES
    mark: int | None = None
    rounds: int = 120
    pause: float = 1.0

    def argv(self) -> tuple[str, ...]:
        off = "" if self.mark is None else str(self.mark)
        start = "" if self.mark is None else str(self.mark + 1)
        return (
            "/bin/sh", "-c", POLL_SCRIPT, POLL_NAME, LABEL, CLIENT_LOG, off, start, f"{self.pause:g}",
            str(self.rounds), VerifyRules.alternation(self.rules.connected),
            VerifyRules.alternation(self.rules.errors), socket_regex(self.switch), self.switch or "",
        )  # fmt: skip

    def command(self) -> Command:
        return Command(self.argv(), mutating=False)

    @classmethod
    def from_argv(cls, argv: tuple[str, ...]) -> PollSpec:
        if not is_poll(argv) or len(argv) != 14:
            raise ValueError("not a verify poll command")
        off, pause, rounds, conn, errs, switch = argv[6], argv[8], argv[9], argv[10], argv[11], argv[13]
        return cls(
            switch=switch or None,
            rules=VerifyRules((conn,), (errs,)),
            mark=int(off) if off else None,
            rounds=int(rounds),
            pause=float(pause),
        )

    def bound(self, *, window: float, pause: float, rules: VerifyRules, mark: int | None) -> PollSpec:
        """This poll with the run's settings: `window` seconds in rounds `pause` apart (at most MAX_ROUNDS),
        the configured rules, and the start step's log mark."""
        pause = max(pause, window / MAX_ROUNDS, 0.05)
        rounds = max(1, min(MAX_ROUNDS, math.ceil(window / pause)))
        return replace(self, rules=rules, mark=mark, rounds=rounds, pause=round(pause, 3))


def is_poll(argv: tuple[str, ...]) -> bool:
    return len(argv) > 3 and argv[:3] == ("/bin/sh", "-c", POLL_SCRIPT) and argv[3] == POLL_NAME


def poll_command(switch: str | None) -> Command:
    """The poll as planned (default rules, no mark, the default window): the runner binds the run's
    settings and the start step's mark before it runs (`PollSpec.bound`)."""
    return PollSpec(switch).command()


@dataclass(frozen=True)
class PollResult:
    """The last round of a poll: the launchd job, the client's connections, the log text judged, how many
    rounds ran and the Mac's own early-stop verdict (pending: it ran out of rounds)."""

    job: LaunchdJob
    sockets: tuple[Endpoint, ...]
    log: str
    log_size: int | None
    rounds: int
    mac_verdict: str

    def as_json(self) -> dict[str, object]:
        return {
            "job": self.job.as_json(),
            "sockets": [str(e) for e in self.sockets],
            "log": self.log,
            "log_size": self.log_size,
            "rounds": self.rounds,
            "mac_verdict": self.mac_verdict,
        }


def parse_poll(out: ProbeOutput) -> PollResult:
    """The poll's markers: `round N VERDICT` lines, then the final `launchd RC`, `lsof`, `log SIZE` sections
    and `end VERDICT`. FactsError when the poll did not finish (no end marker)."""
    if out.exit_status is None:
        raise FactsError("the verify poll did not run to its end")
    text = out.stdout
    end = text.rfind(f"\n{MARK} end ")
    head = text.find(f"{MARK} launchd ")
    if end < 0 or head < 0 or head > end:
        raise FactsError(f"the verify poll printed no final probes (exit {out.exit_status})")
    rounds = sum(1 for line in text[:head].splitlines() if line.startswith(f"{MARK} round "))
    verdict = text[end:].split()[2] if len(text[end:].split()) > 2 else "pending"
    body = text[head:end]
    first, _, rest = body.partition("\n")
    rc_text = first.split()[2] if len(first.split()) > 2 else ""
    job_text, _, rest = rest.partition(f"\n{MARK} lsof\n")
    socks_text, _, rest = rest.partition(f"\n{MARK} log ")
    size_line, _, log_text = rest.partition("\n")
    rc = int(rc_text) if rc_text.lstrip("-").isdigit() else None
    status = rc if rc is not None else 1
    job = parse_launchctl_print(ProbeOutput(("launchctl", "print"), status, job_text, ""))
    sockets = parse_lsof_fn(ProbeOutput(("lsof",), 0, socks_text, ""))
    size = int(size_line.strip()) if size_line.strip().isdigit() else None
    return PollResult(job, sockets, log_text, size, rounds, verdict)


def connected_commands(switch: str | None) -> tuple[Command, ...]:
    """The probes of "running and connected": one poll."""
    return (poll_command(switch),)


def verify_commands(switch: str | None) -> tuple[Command, ...]:
    """The receipt (the installed version must be the target), then the poll (the same exec)."""
    return (
        Command(("pkgutil", "--pkg-info", PKG_ID), mutating=False, ok_codes=(0, 1)),
        *connected_commands(switch),
    )


def judge_verify(facts: MacFacts, params: InstallParams, outputs: list[ProbeOutput]) -> VerifyVerdict:
    """The receipt's version must be the target (VersionMismatch otherwise: waiting will not change it),
    then `judge_connected`."""
    if len(outputs) != 2:
        raise ValueError(f"verify expects 2 outputs (pkgutil, poll), got {len(outputs)}")
    try:
        installed = parse_pkg_info(outputs[0])
    except FactsError as e:
        return VerifyVerdict(False, FailureReason("VersionMismatch", f"cannot read the receipt: {e}"))
    if installed != params.version:
        return VerifyVerdict(
            False,
            FailureReason(
                "VersionMismatch",
                f"installed version is {installed or 'none (no receipt)'}, not {params.version}",
                "see /var/log/install.log on the Mac",
            ),
        )
    return judge_connected(outputs[1:])


def judge_connected(outputs: list[ProbeOutput]) -> VerifyVerdict:
    """A finished poll, judged (the rules and Switch are read back from its argv: the judge applies what the
    Mac applied). done: the job runs and the socket or the log shows the connection. failed: the job is not
    loaded, or stopped after running (DaemonNotRunning); the latest log evidence is an error and no socket
    is open (NotConnected, the line as message). pending: the window ended without either — the runner
    records the device as unverified when the job runs (`unverified`), as failed when it never started."""
    if len(outputs) != 1:
        raise ValueError(f"expects 1 output (the verify poll), got {len(outputs)}")
    spec = PollSpec.from_argv(outputs[0].argv)
    try:
        poll = parse_poll(outputs[0])
    except FactsError as e:
        return VerifyVerdict(False, FailureReason("VerifyIncomplete", str(e), "see this step's output tail"))
    job = poll.job
    if not job.loaded:
        return VerifyVerdict(
            False,
            FailureReason(
                "DaemonNotRunning",
                f"{LABEL} is not loaded in launchd",
                f"check /Library/Logs/1E.Client.Daemon.log; start it: launchctl load -w {LABEL}",
            ),
        )
    sock = socket_to_switch(poll.sockets, spec.switch) if job.running else None
    evidence = log_evidence(poll.log.splitlines(), spec.rules)
    if sock is None and evidence.error and evidence.line is not None:
        return VerifyVerdict(False, FailureReason("NotConnected", evidence.line, _hint(evidence.line)))
    if not job.running:
        if job.last_exit not in (None, "(never exited)"):
            return VerifyVerdict(
                False,
                FailureReason(
                    "DaemonNotRunning",
                    f"{LABEL} is not running (last exit code {job.last_exit})",
                    "check /Library/Logs/1E.Client.Daemon.log (Rosetta 2 on Apple silicon?)",
                ),
            )
        return VerifyVerdict(
            False,
            FailureReason(
                "DaemonNotRunning",
                f"{LABEL} is loaded but did not start within the verify window ({poll.rounds} probes)",
                "check /Library/Logs/1E.Client.Daemon.log",
            ),
        )
    if sock is not None:
        return VerifyVerdict(True, detail=f"pid {job.pid} holds an established TCP connection to {sock}")
    if evidence.connected and evidence.line is not None:
        return VerifyVerdict(True, detail=evidence.line)
    return VerifyVerdict(
        False,
        detail=(
            f"{LABEL} runs (pid {job.pid}) but neither its log"
            f"{' since the (re)start' if spec.mark is not None else ''} nor an established TCP connection to "
            f"{spec.switch or 'the Switch'} confirmed the connection ({poll.rounds} probes)"
        ),
    )


def _hint(line: str) -> str:
    low = line.lower()
    if "private key" in low or "passphrase" in low:
        return "the installed binary has no access to the key: re-import the identity with -T for it"
    if "no client certificate" in low:
        return "import the device's PFX into the System keychain (its CN must equal `hostname` exactly)"
    if "not trusted" in low:
        return "trust the issuing CA in the System keychain (or deploy it by a configuration profile)"
    if "configuration" in low:
        return "set Switch and BackgroundChannelUrl with 1E.Client.updateconf.sh"
    return "see /Library/Logs/1E.Client.log"
