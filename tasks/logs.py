"""The logs workflow: read-only. The last N lines of the client log (and of the daemon log when asked) are
fact probes, so the runner's one facts round trip fetches them: `DeviceResult.facts.logs` holds
`parse_logs(outputs)`. The usual Mac probes run beside them, so the device's recorded facts stay right.
No step changes anything (the workflow has none)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from tasks.evidence import VerifyRules
from tasks.facts import (
    CLIENT_LOG,
    DAEMON_LOG,
    LOG_TAIL_LINES,
    ClientFacts,
    FactsError,
    client_fact_commands,
    parse_client_facts,
)
from tasks.model import SAMPLE_RUN_ID, Command, JobInputs, ProbeOutput, VerifyVerdict, Workflow, checked

LOG_PREFIX = "log:"
MAX_LINES = 100_000


@dataclass(frozen=True)
class LogsParams:
    run_id: str
    lines: int = 200
    daemon: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.lines <= MAX_LINES:
            raise ValueError(f"lines must be 1..{MAX_LINES}, got {self.lines}")

    def as_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "lines": self.lines, "daemon": self.daemon}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LogsParams:
        extra = set(data) - {"run_id", "lines", "daemon"}
        if extra:
            raise ValueError(f"LogsParams: unknown {sorted(extra)}")
        return cls(str(data["run_id"]), int(data.get("lines", 200)), bool(data.get("daemon", False)))


def log_commands(params: LogsParams) -> tuple[tuple[str, Command], ...]:
    logs = [("client", CLIENT_LOG)] + ([("daemon", DAEMON_LOG)] if params.daemon else [])
    return tuple(
        (
            f"{LOG_PREFIX}{name}",
            Command(("tail", "-n", str(params.lines), path), mutating=False, ok_codes=(0, 1)),
        )
        for name, path in logs
    )


def fact_commands(params: LogsParams) -> tuple[tuple[str, Command], ...]:
    return (*client_fact_commands(), *log_commands(params))


def parse_logs(outputs: Mapping[str, ProbeOutput]) -> dict[str, str]:
    """{"client": text, "daemon": text} from the `log:*` probes: the tail's output; "" when the log does
    not exist (tail exits 1). A probe that did not finish raises FactsError."""
    out: dict[str, str] = {}
    for name, o in outputs.items():
        if not name.startswith(LOG_PREFIX):
            continue
        if o.exit_status is None:
            raise FactsError(f"tail of the {name[len(LOG_PREFIX) :]} log did not finish")
        out[name[len(LOG_PREFIX) :]] = o.stdout if o.exit_status == 0 else ""
    return out


def parse_facts(params: LogsParams, outputs: Mapping[str, ProbeOutput], rules: VerifyRules) -> ClientFacts:
    missing = [n for n, _ in log_commands(params) if n not in outputs]
    if missing:
        raise FactsError(f"missing probe outputs: {', '.join(missing)}")
    return replace(parse_client_facts(outputs, rules), logs=parse_logs(outputs))


def _never(facts: Any, params: Any, outputs: list[ProbeOutput]) -> VerifyVerdict:
    raise AssertionError("the logs workflow has no verify step")


def build_params(job: JobInputs) -> LogsParams:
    p = job.run_params
    base = {"run_id": job.run_id, "lines": int(p.get("lines") or 200), "daemon": bool(p.get("daemon"))}
    return checked("logs", job, lambda: LogsParams.from_json(base))


def sample_params(facts: ClientFacts | None) -> LogsParams:
    return LogsParams(SAMPLE_RUN_ID, LOG_TAIL_LINES, daemon=True)


LOGS = Workflow(
    name="logs",
    steps=(),
    fact_commands=fact_commands,
    parse_facts=parse_facts,
    judge_verify=_never,
    build_params=build_params,
    sample_params=sample_params,
)
