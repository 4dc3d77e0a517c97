"""start / stop / restart: the client's launchd job, from the facts of one round trip.

Rules:
- start: not installed (no plist, job not loaded) → refuse (ClientNotInstalled); running → noop; loaded
  but not running → `launchctl kickstart system/<label>`; not loaded → the documented `launchctl load -w
  <plist>` (-w also clears a disabled override, which `bootstrap` would trip on). Verify: connected.
- stop: loaded → `launchctl bootout system/<label>` (by label: works even when the plist is gone; a KeepAlive
  job only stays down when booted out); not loaded → noop. Not persistent (like the guide's `unload`
  without -w): the job comes back at boot. Verify: the job is not running.
- restart: loaded → `kickstart -k`; not loaded → `load -w` (a restart of a stopped client starts it).
  A restart is an action, not a state: every run restarts once. Verify: connected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Self, TypeVar

from tasks.evidence import VerifyRules
from tasks.facts import (
    LABEL,
    PLIST,
    ClientFacts,
    client_fact_commands,
    parse_client_facts,
    parse_launchctl_print,
)
from tasks.install.explain import _last_line
from tasks.install.verify import LOG_MARK, NOT_FOUND, connected_commands, judge_connected
from tasks.model import (
    SAMPLE_RUN_ID,
    Command,
    DeviceUpdate,
    FailureReason,
    JobInputs,
    Outcome,
    Phase,
    Plan,
    ProbeOutput,
    StepDef,
    VerifyVerdict,
    Workflow,
    checked,
    commands,
    noop,
    observed,
    refuse,
)

SERVICE = f"system/{LABEL}"


@dataclass(frozen=True)
class ServiceParams:
    run_id: str

    def as_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        extra = set(data) - {f.name for f in fields(cls)}
        if extra:
            raise ValueError(f"{cls.__name__}: unknown {sorted(extra)}")
        return cls(**data)


@dataclass(frozen=True)
class StartParams(ServiceParams):
    pass


@dataclass(frozen=True)
class StopParams(ServiceParams):
    pass


@dataclass(frozen=True)
class RestartParams(ServiceParams):
    pass


@dataclass(frozen=True)
class CheckParams(ServiceParams):
    pass


def stop_command() -> Command:
    return Command(("launchctl", "bootout", SERVICE))


def load_command() -> Command:
    return Command(("launchctl", "load", "-w", PLIST))


def kickstart_command(kill: bool) -> Command:
    return Command(("launchctl", "kickstart", *(("-k",) if kill else ()), SERVICE))


def _not_installed(facts: ClientFacts) -> Plan | None:
    if facts.mac.job.loaded or PLIST in facts.present:
        return None
    return refuse(
        "ClientNotInstalled",
        f"{PLIST} is missing and {LABEL} is not loaded",
        "install the client first: orchestrate deploy",
    )


def start(facts: ClientFacts, params: ServiceParams) -> Plan:
    job = facts.mac.job
    if job.running:
        return noop(f"{LABEL} runs (pid {job.pid})")
    if job.loaded:
        return commands(LOG_MARK, kickstart_command(kill=False))
    return _not_installed(facts) or commands(LOG_MARK, load_command())


def stop(facts: ClientFacts, params: ServiceParams) -> Plan:
    if not facts.mac.job.loaded:
        return noop(f"{LABEL} is not loaded")
    return commands(stop_command())


def restart(facts: ClientFacts, params: ServiceParams) -> Plan:
    if facts.mac.job.loaded:
        return commands(LOG_MARK, kickstart_command(kill=True))
    return _not_installed(facts) or commands(LOG_MARK, load_command())


def verify_connected(facts: ClientFacts, params: ServiceParams) -> Plan:
    """The poll, for the Switch the conf names (the socket signal needs its port)."""
    return commands(*connected_commands((facts.mac.conf or {}).get("Switch")))


def judge_started(facts: ClientFacts, params: ServiceParams, outputs: list[ProbeOutput]) -> VerifyVerdict:
    return judge_connected(outputs)


def verify_stopped(facts: ClientFacts, params: ServiceParams) -> Plan:
    return commands(
        Command(("launchctl", "print", SERVICE), mutating=False, ok_codes=(0, NOT_FOUND))
    )


def judge_stopped(facts: ClientFacts, params: ServiceParams, outputs: list[ProbeOutput]) -> VerifyVerdict:
    """done: the job is not loaded, or loaded and not running. pending: it still runs."""
    if len(outputs) != 1:
        raise ValueError(f"stop verify expects 1 output (launchctl print), got {len(outputs)}")
    job = parse_launchctl_print(outputs[0])
    if job.running:
        return VerifyVerdict(False, detail=f"{LABEL} still runs (pid {job.pid})")
    return VerifyVerdict(True, detail=f"{LABEL} is {'loaded, not running' if job.loaded else 'not loaded'}")


def explain_launchctl(
    argv: tuple[str, ...], status: int | None, stdout: str, stderr: str
) -> FailureReason | None:
    text = f"{stdout}\n{stderr}"
    last = _last_line(stdout, stderr)
    if "Operation not permitted" in text or "as root" in text:
        return FailureReason("PermissionDenied", last, "launchctl on the system domain needs root (sudo)")
    if "Could not find service" in text or status == 113:
        return FailureReason("DaemonNotLoaded", last, f"{LABEL} is not loaded: start it (launchctl load -w)")
    if "disabled" in text.lower() or status == 119:
        return FailureReason("DaemonDisabled", last, f"launchctl enable {SERVICE}, then start it")
    return FailureReason("LaunchctlFailed", last, "check /Library/Logs/1E.Client.Daemon.log")


def _facts(params: Any) -> tuple[tuple[str, Command], ...]:
    return client_fact_commands()


def _parse(params: Any, outputs: Mapping[str, ProbeOutput], rules: VerifyRules) -> ClientFacts:
    return parse_client_facts(outputs, rules)


S = TypeVar("S", bound=ServiceParams)


def _builder(name: str, cls: type[S]) -> Callable[[JobInputs], S]:
    """build_params of a service workflow: the run id is all it takes."""

    def build(job: JobInputs) -> S:
        return checked(name, job, lambda: cls.from_json({"run_id": job.run_id}))

    return build


def _sample(cls: type[S]) -> Callable[[ClientFacts | None], S]:
    return lambda facts: cls(SAMPLE_RUN_ID)


def stopped_update(outcome: Outcome, connected: bool | None, params: ServiceParams) -> DeviceUpdate:
    """A stopped client is not connected."""
    if outcome is Outcome.SUCCEEDED:
        return DeviceUpdate(connected=False)
    return observed(outcome, connected, params)


def _workflow(
    name: str, cls: type[S], step: StepDef, verify: Any, judge: Any, update: Any = observed
) -> Workflow[S, ClientFacts]:
    return Workflow(
        name=name,
        steps=(step, StepDef("verify", verify, phase=Phase.VERIFY, description="launchd job, log, socket")),
        fact_commands=_facts,
        parse_facts=_parse,
        judge_verify=judge,
        build_params=_builder(name, cls),
        sample_params=_sample(cls),
        device_update=update,
    )


START = _workflow(
    "start",
    StartParams,
    StepDef("start", start, explain=explain_launchctl, description="load -w, or kickstart"),
    verify_connected,
    judge_started,
)
STOP = _workflow(
    "stop",
    StopParams,
    StepDef("stop", stop, explain=explain_launchctl, description="bootout"),
    verify_stopped,
    judge_stopped,
    stopped_update,
)
RESTART = _workflow(
    "restart",
    RestartParams,
    StepDef("restart", restart, explain=explain_launchctl, description="kickstart -k, or load -w"),
    verify_connected,
    judge_started,
)

# `status --refresh`: read-only. Facts, then the verify poll; no step changes anything (no mark is taken, so
# the poll reads the log's tail: the latest evidence of the running client, and its sockets).
CHECK = Workflow(
    name="check",
    steps=(StepDef("verify", verify_connected, phase=Phase.VERIFY, description="connected (read-only)"),),
    fact_commands=_facts,
    parse_facts=_parse,
    judge_verify=judge_started,
    build_params=_builder("check", CheckParams),
    sample_params=_sample(CheckParams),
)
