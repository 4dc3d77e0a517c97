"""The verify evidence rules (tasks.evidence) and the judge of a finished poll (tasks.install.verify), plus the
poll script itself run by macsim's shell: where it starts reading the log (mark, rotation, no mark)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tasks.evidence import (
    DEFAULT_RULES,
    Endpoint,
    PatternError,
    VerifyRules,
    log_evidence,
    socket_regex,
    socket_to_switch,
    validate_patterns,
)
from tasks.install.verify import PollSpec, judge_connected, parse_poll
from tasks.model import ProbeOutput
from tests.macsim.shell_fixtures import make_mac, run

from .verify_support import NEVER_RAN, RUNNING, STOPPED, poll_output

# Wordings a client could plausibly use for "connected": the defaults must meet every one.
CONNECTED_WORDINGS = [
    "2026-11-28 10:47:32.063 INFO    Connected to Switch tachyon.acme.local:4000 as mac.local",  # macsim
    "2026-11-28 10:47:32 [info] [net] Switch session established with tachyon:4000 (identity mac.local)",
    "I 10:47:32 Connection to switch tachyon.acme.local:4000 established",
    "Successfully connected to the Switch (tachyon.acme.local:4000)",
    "SwitchClient: connected",
    "Registered with Switch tachyon.acme.local",
]
NOT_CONNECTED = [
    "Connecting to Switch tachyon.acme.local:4000 ...",
    "1E Client starting",
    "Loaded configuration from /Library/Application Support/1E/Client/1E.Client.conf",
]
ERRORS = [
    "ERROR   no client certificate found matching mac.local in /Library/Keychains/System.keychain",
    "[error] Certificate chain for mac.local is not trusted",
    "Not connected to Switch: TLS handshake failed",
    "Connection to Switch refused",
    "WARNING Configuration incomplete: Switch is empty; not connecting",
    "[net] Cannot continue: client certificate expired",
]


@pytest.mark.parametrize("line", CONNECTED_WORDINGS)
def test_default_patterns_meet_any_sensible_connected_wording(line: str) -> None:
    assert log_evidence([line]).connected


@pytest.mark.parametrize("line", NOT_CONNECTED + ERRORS)
def test_default_patterns_do_not_read_these_as_connected(line: str) -> None:
    assert not log_evidence([line]).connected


@pytest.mark.parametrize("line", ERRORS)
def test_default_error_patterns(line: str) -> None:
    assert log_evidence([line]).error


def test_latest_evidence_wins_and_errors_win_a_shared_line() -> None:
    err, ok = ERRORS[0], CONNECTED_WORDINGS[0]
    assert log_evidence([err, ok]).connected
    assert log_evidence([ok, err]).error
    assert log_evidence([ok, "INFO heartbeat"]).connected  # lines matching neither do not count
    assert log_evidence(["Not connected to Switch"]).error  # matches a connected pattern too


def test_patterns_are_validated_with_a_clear_error() -> None:
    for bad, why in [
        ([], "at least one"),
        ([""], "empty"),
        (["conn(ected"], "not a valid regex"),
        ([r"connected\s+to"], "grep -E"),
        (["(?:connected) to"], "grep -E"),
        ([r"\bswitch\b"], "grep -E"),
        (["connected.*?switch"], "grep -E"),
        (["[[:space:]]switch"], "grep -E"),
        (["a\nb"], "line break"),
    ]:
        with pytest.raises(PatternError, match=why):
            validate_patterns("connected_patterns", bad)
    assert validate_patterns("x", ["(a|b) [0-9]+"]) == ("(a|b) [0-9]+",)
    with pytest.raises(PatternError, match="error_patterns"):
        VerifyRules(errors=(r"\d",))


def test_socket_matching() -> None:
    conns = (Endpoint("10.0.0.9", 4000), Endpoint("fd00::5", 443))
    assert socket_to_switch(conns, "switch.acme:4000") == conns[0]  # a name: the port decides
    assert socket_to_switch(conns, "10.0.0.9:4000;b:1") == conns[0]
    assert socket_to_switch(conns, "10.0.0.8:4000") is None  # an IP literal: the address too
    assert socket_to_switch(conns, "[fd00::5]:443") == conns[1]
    assert socket_to_switch(conns, None) is None
    assert socket_regex("a:4000;b:4001") == "->.*:(4000|4001)$" and socket_regex(None) == ""


def test_judge_a_finished_poll() -> None:
    sock = "p42\nf9\nn10.0.0.2:50000->10.0.0.9:4000\n"
    connected = "t INFO Connected to Switch s:4000 as m"
    error = "t ERROR no client certificate found matching m"
    cases = [
        (poll_output(0, RUNNING, connected), "done", None),
        (poll_output(0, RUNNING, "", sock), "done", None),
        (poll_output(0, RUNNING, error, sock), "done", None),  # a current socket beats an older error
        (poll_output(0, RUNNING, error), "failed", "NotConnected"),
        (poll_output(0, RUNNING, f"{error}\n{connected}"), "done", None),
        (poll_output(0, RUNNING, ""), "pending", None),  # the runner's `unverified`
        (poll_output(0, RUNNING, "", "p42\nf9\nn10.0.0.2:50000->10.0.0.9:443\n"), "pending", None),
        (poll_output(113, "Bad request.\nCould not find service"), "failed", "DaemonNotRunning"),
        (poll_output(0, STOPPED, connected), "failed", "DaemonNotRunning"),
        (poll_output(0, NEVER_RAN, ""), "failed", "DaemonNotRunning"),
    ]
    for out, want, error_type in cases:
        v = judge_connected([out])
        got = "done" if v.done else "failed" if v.failure else "pending"
        assert (got, v.failure.error_type if v.failure else None) == (want, error_type), out.stdout
    unfinished = ProbeOutput(PollSpec("s:1").argv(), None, "@@macfleet-verify round 1 pending\n", "")
    v = judge_connected([unfinished])
    assert v.failure is not None and v.failure.error_type == "VerifyIncomplete"


def test_the_judge_applies_the_rules_the_mac_applied() -> None:
    rules = VerifyRules(connected=("session up",))
    out = poll_output(0, RUNNING, "t session up", rules=rules)
    assert judge_connected([out]).done
    assert judge_connected([poll_output(0, RUNNING, "t session up")]).pending  # not by the defaults


def test_spec_round_trips_through_its_argv_and_binds_the_run() -> None:
    spec = PollSpec("a:4000", rules=DEFAULT_RULES, mark=None, rounds=120, pause=1.0)
    back = PollSpec.from_argv(spec.argv())
    assert (back.switch, back.mark, back.rounds, back.pause) == ("a:4000", None, 120, 1.0)
    bound = spec.bound(window=10.0, pause=0.05, rules=VerifyRules(connected=("up",)), mark=77)
    assert (bound.mark, bound.rounds, bound.pause, bound.rules.connected) == (77, 200, 0.05, ("up",))
    assert spec.bound(window=3600.0, pause=0.1, rules=DEFAULT_RULES, mark=None).rounds == 600


LOG = "".join(f"line {i:02d} Connected to Switch s:4000\n" for i in range(10))
WIDTH = len(LOG) // 10  # every line is as long


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("mark", "first"),
    [(WIDTH * 7, "line 07"), (WIDTH * 50, "line 00"), (None, "line 00")],
    ids=["from-the-mark", "rotated-reads-all", "no-mark-reads-the-tail"],
)
async def test_the_poll_reads_from_the_mark(tmp_path: Path, mark: int | None, first: str) -> None:
    """No client is loaded (launchctl print fails): the poll stops after one round and prints the log it read.
    The log is smaller than a mark past its end: it rotated, the whole new file is read."""
    mac = make_mac(tmp_path)
    mac.fs.makedirs("/Library/Logs")
    mac.fs.write_bytes("/Library/Logs/1E.Client.log", LOG.encode(), mode=0o644)
    spec = PollSpec("s:4000", mark=mark, rounds=5, pause=0.05)
    r = await run(mac, shlex.join(spec.argv()))
    assert r.status == 0, r.err
    poll = parse_poll(ProbeOutput(spec.argv(), r.status, r.out, r.err))
    assert (poll.rounds, poll.mac_verdict, poll.job.loaded, poll.log_size) == (1, "not-loaded", False, len(LOG))
    assert poll.log.splitlines()[0].startswith(first)
