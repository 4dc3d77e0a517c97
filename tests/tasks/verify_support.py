"""Verify poll outputs for the judge's unit tests: what `POLL_SCRIPT` prints, built from its parts."""

from __future__ import annotations

from tasks.evidence import DEFAULT_RULES, VerifyRules
from tasks.install.verify import MARK, PollSpec
from tasks.model import ProbeOutput

RUNNING = "system/com.1e.pkg.1E.Client = {\n\tstate = running\n\tpid = 42\n\tlast exit code = (never exited)\n}"
STOPPED = "system/com.1e.pkg.1E.Client = {\n\tstate = not running\n\tlast exit code = 78: EX_CONFIG\n}"
NEVER_RAN = "system/com.1e.pkg.1E.Client = {\n\tstate = not running\n\tlast exit code = (never exited)\n}"


def poll_output(
    launchd_rc: int,
    launchd: str,
    log: str = "",
    lsof: str = "",
    *,
    switch: str | None = "s:4000",
    mark: int | None = 100,
    rounds: int = 3,
    verdict: str = "pending",
    rules: VerifyRules = DEFAULT_RULES,
) -> ProbeOutput:
    """The poll's stdout after `rounds` rounds ending with these final probes."""
    spec = PollSpec(switch, rules=rules, mark=mark, rounds=rounds, pause=0.1)
    lines = [f"{MARK} round {i} {'pending' if i < rounds else verdict}" for i in range(1, rounds + 1)]
    text = "\n".join(lines) + "\n"
    text += f"{MARK} launchd {launchd_rc}\n{launchd}\n{MARK} lsof\n{lsof}\n{MARK} log 512\n{log}\n"
    text += f"{MARK} end {verdict}\n"
    return ProbeOutput(spec.argv(), 0, text, "")
