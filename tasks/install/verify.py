"""The verify step's read-only probes and their judge."""

from __future__ import annotations

from tasks.facts import (
    CLIENT_LOG,
    LABEL,
    LOG_TAIL_LINES,
    PKG_ID,
    FactsError,
    MacFacts,
    parse_launchctl_print,
    parse_log_tail,
    parse_pkg_info,
)
from tasks.install.params import InstallParams
from tasks.model import Command, FailureReason, ProbeOutput, VerifyVerdict

NOT_FOUND = 113  # `launchctl print` of a service that is not loaded


def connected_commands() -> tuple[Command, ...]:
    """The probes of "running and connected": the launchd job and the client log's tail."""
    return (
        Command(("launchctl", "print", f"system/{LABEL}"), mutating=False, ok_codes=(0, NOT_FOUND)),
        Command(("tail", "-n", str(LOG_TAIL_LINES), CLIENT_LOG), mutating=False, ok_codes=(0, 1)),
    )


def verify_commands() -> tuple[Command, ...]:
    """connected_commands, then the receipt (the installed version must be the target)."""
    return (
        *connected_commands(),
        Command(("pkgutil", "--pkg-info", PKG_ID), mutating=False, ok_codes=(0, 1)),
    )


def judge_verify(facts: MacFacts, params: InstallParams, outputs: list[ProbeOutput]) -> VerifyVerdict:
    """The receipt's version must be the target (VersionMismatch otherwise: waiting will not change it),
    then `judge_connected`."""
    if len(outputs) != 3:
        raise ValueError(f"verify expects 3 outputs (launchctl print, tail, pkgutil), got {len(outputs)}")
    try:
        installed = parse_pkg_info(outputs[2])
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
    return judge_connected(outputs[:2])


def judge_connected(outputs: list[ProbeOutput], switch: str | None = None) -> VerifyVerdict:
    """done: the job runs and the client log's LAST start block says "Connected to Switch" (naming the
    first of `switch` when given; another Switch is still pending: a restart's new block may not be
    written yet). failed: the job is not loaded, or stopped after running (DaemonNotRunning), or the last
    block shows an error (NotConnected, the log's error line as message). pending: no verdict yet."""
    if len(outputs) != 2:
        raise ValueError(f"expects 2 outputs (launchctl print, tail), got {len(outputs)}")
    job = parse_launchctl_print(outputs[0])
    block = parse_log_tail(outputs[1])
    if not job.loaded:
        return VerifyVerdict(
            False,
            FailureReason(
                "DaemonNotRunning",
                f"{LABEL} is not loaded in launchd",
                f"check /Library/Logs/1E.Client.Daemon.log; start it: launchctl load -w {LABEL}",
            ),
        )
    if block is not None and block.error is not None:
        return VerifyVerdict(False, FailureReason("NotConnected", block.error, _hint(block.error)))
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
        return VerifyVerdict(False, detail="the job is loaded but not running yet")
    if block is not None and block.connected:
        line = next(x for x in block.lines if "Connected to Switch" in x)
        wanted = switch.split(";")[0].strip() if switch else None
        if wanted is not None and f"Connected to Switch {wanted}" not in line:
            return VerifyVerdict(False, detail=f"connected, but not (yet) to {wanted}: {line}")
        return VerifyVerdict(True, detail=line)
    return VerifyVerdict(False, detail="the client has not reported a Switch connection since it started")


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
