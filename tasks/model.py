"""The vocabulary every workflow speaks: commands, uploads, no-ops, refusals, plans and step definitions.

A step planner is a pure function `(facts, params) -> Plan`. The runner (workers/) turns plans into SSH
execs and SFTP uploads; nothing here does I/O. Secrets never appear in a plan: a command that needs one on
its stdin names the input (`stdin="identity-import"`) and the runner supplies the bytes at the edge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypedDict

from typing_extensions import TypeVar  # a default for the type variables (typing has it from 3.13)

from tasks.refs import CaRef, DmgRef, IdentityRef

if TYPE_CHECKING:  # tasks.evidence imports this module
    from tasks.evidence import VerifyRules


class FactsError(ValueError):
    """A probe's output cannot be read as the fact it should give (or the probe did not finish)."""


@dataclass(frozen=True)
class Command:
    """One argv list to run on the Mac.

    sudo: run as root (through the device's sudo mode). mutating: changes the Mac (a re-run of a finished
    workflow must issue none). stdin: the name of an input the runner feeds (never the value); every other
    command gets an empty stdin. ok_codes: exit statuses that count as success. unless: a read-only probe
    argv run first (same privileges); when it exits 0 the command is skipped and recorded as a no-op (used
    where the only trustworthy check needs a file we push, e.g. `security verify-cert` of a CA)."""

    argv: tuple[str, ...]
    sudo: bool = True
    mutating: bool = True
    stdin: str | None = None
    ok_codes: tuple[int, ...] = (0,)
    unless: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for words in (self.argv, self.unless if self.unless is not None else ("x",)):
            if not words or not all(isinstance(w, str) for w in words):
                raise ValueError(f"argv must be a non-empty tuple of str, got {words!r}")

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"argv": list(self.argv)}
        if not self.sudo:
            out["sudo"] = False
        if not self.mutating:
            out["mutating"] = False
        if self.stdin is not None:
            out["stdin"] = self.stdin
        if self.ok_codes != (0,):
            out["ok_codes"] = list(self.ok_codes)
        if self.unless is not None:
            out["unless"] = list(self.unless)
        return out


@dataclass(frozen=True)
class Upload:
    """A file to place in the run's private directory (0700) as `name` with `mode`.

    source: what the runner sends, by reference: "dmg" (the run's artifact), "pfx" (the device's PFX,
    re-wrapped with a one-time password at the edge), or "ca:<sha256>" (a stored CA certificate, PEM)."""

    source: str
    name: str
    sha256: str | None = None  # known in advance for the DMG and CAs; the re-wrapped PFX is made at the edge
    mode: int = 0o600

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"upload": self.source, "name": self.name}
        if self.sha256 is not None:
            out["sha256"] = self.sha256
        if self.mode != 0o600:
            out["mode"] = f"{self.mode:04o}"
        return out


@dataclass(frozen=True)
class Noop:
    """Nothing to do: the Mac is already right. `reason` says how we know."""

    reason: str


class Refusal(Exception):
    """A step declines to run because the Mac is not fit for it (a typed, expected failure).

    error_type: a stable code (e.g. "HostnameMismatch", "InsufficientSpace", "TrustRefused").
    hint: what the operator should do."""

    def __init__(self, error_type: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.hint = hint

    def as_json(self) -> dict[str, str]:
        return {"error_type": self.error_type, "message": self.message, "hint": self.hint}


@dataclass(frozen=True)
class Plan:
    """What one step will do: uploads first, then commands in order; or a no-op; or a refusal."""

    commands: tuple[Command, ...] = ()
    uploads: tuple[Upload, ...] = ()
    noop: Noop | None = None
    refusal: Refusal | None = None

    def __post_init__(self) -> None:
        outcomes = [bool(self.commands or self.uploads), self.noop is not None, self.refusal is not None]
        if sum(outcomes) != 1:
            raise ValueError("a plan is exactly one of: commands/uploads, a noop, a refusal")

    @property
    def mutating(self) -> bool:
        return bool(self.uploads) or any(c.mutating for c in self.commands)

    def as_json(self) -> dict[str, Any]:
        if self.noop is not None:
            return {"noop": self.noop.reason}
        if self.refusal is not None:
            return {"refusal": self.refusal.as_json()}
        out: dict[str, Any] = {}
        if self.uploads:
            out["uploads"] = [u.as_json() for u in self.uploads]
        if self.commands:
            out["commands"] = [c.as_json() for c in self.commands]
        return out


def noop(reason: str) -> Plan:
    return Plan(noop=Noop(reason))


def refuse(error_type: str, message: str, hint: str = "") -> Plan:
    return Plan(refusal=Refusal(error_type, message, hint))


def commands(*cmds: Command, uploads: tuple[Upload, ...] = ()) -> Plan:
    return Plan(commands=tuple(cmds), uploads=uploads)


class Phase(StrEnum):
    """When the runner executes a step. Consecutive EXEC steps share one exec (a script with a marker
    per command), so a full install costs a handful of round trips."""

    PUSH = "push"  # uploads over SFTP (no exec of its own beyond the transfer's hash check)
    EXEC = "exec"  # commands, batched with neighbouring EXEC steps
    VERIFY = "verify"  # read-only probes, repeated until `Workflow.judge_verify` decides or time runs out


@dataclass(frozen=True)
class FailureReason:
    """Why a command failed, in operator terms: a stable type, a message, and what to do."""

    error_type: str
    message: str
    hint: str = ""


Planner = Callable[[Any, Any], Plan]
"""(facts, params) -> Plan. Facts and params are the workflow's own typed records."""

Explainer = Callable[[tuple[str, ...], int | None, str, str], FailureReason | None]
"""(argv, exit status, stdout, stderr) -> a typed reason for a failed command, or None (generic)."""


@dataclass(frozen=True)
class StepDef:
    """A named step of a workflow.

    always: runs even after an earlier step failed (unmount, cleanup) — but, after a failure, only when the
    step named by `requires` changed something in this attempt (no detach without an attach). A step
    interrupted mid-way is never resumed blindly: the runner re-gathers facts and re-plans every step
    (planners are idempotent, so re-planning from fresh facts IS the probe).

    awaiting_trust_on: error types (of a refusal, or of `explain` for a command that exited non-zero) that do
    not fail the device: the step is recorded failed with that reason, the workflow goes on, VERIFY steps are
    skipped, and the device ends awaiting trust (its CA trust is to come by MDM profile)."""

    name: str
    planner: Planner
    phase: Phase = Phase.EXEC
    always: bool = False
    requires: str | None = None
    explain: Explainer | None = None
    description: str = ""
    awaiting_trust_on: frozenset[str] = frozenset()


@dataclass(frozen=True)
class VerifyVerdict:
    """What a verify probe concluded: done (connected), failed for good (with a reason), or not yet."""

    done: bool
    failure: FailureReason | None = None
    detail: str = ""

    @property
    def pending(self) -> bool:
        return not self.done and self.failure is None


class Params(Protocol):
    """A workflow's typed parameters (a frozen dataclass per workflow)."""

    @property
    def run_id(self) -> str: ...

    def as_json(self) -> dict[str, Any]: ...


class Facts(Protocol):
    """A workflow's typed facts record; `as_json()` is what the runner stores as the device's facts."""

    def as_json(self) -> dict[str, Any]: ...


# defaults: a plain `Workflow` is any workflow (the runner passes params and facts on without reading them)
P = TypeVar("P", bound=Params, default=Any)
F = TypeVar("F", bound=Facts, default=Any)


class ParamsError(ValueError):
    """A device's inputs do not make params for this workflow (recorded as the job's failure)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class Read(StrEnum):
    """What of a device the runner reads from the database for a workflow's `build_params`."""

    IDENTITY = "identity"  # the device's active client certificate
    CAS_ADDED = "cas_added"  # the CA certificates our runs trusted on it (audit trail)


@dataclass(frozen=True)
class JobInputs:
    """What a workflow builds its params from: the run's params (its JSON) and the device's own inputs,
    read by the runner (workers/runner/inputs.py) and handed over as plain values."""

    run_id: str
    device_name: str
    run_params: Mapping[str, Any]
    private_dir: str
    dmg: DmgRef | None = None
    cas: tuple[CaRef, ...] = ()
    identity: IdentityRef | None = None  # with Read.IDENTITY: None when the device has no certificate
    cas_added: tuple[str, ...] = ()  # with Read.CAS_ADDED: SHA-1s (lower case), first trusted first


def checked(kind: str, inputs: JobInputs, make: Callable[[], P]) -> P:
    """make(), its bad-value errors said as what they are: the run's `kind` parameters for this device."""
    try:
        return make()
    except (ValueError, TypeError, KeyError) as e:
        raise ParamsError("BadParameters", f"{kind} parameters for {inputs.device_name}: {e}") from None


class Outcome(StrEnum):
    """How a device job ended, as a workflow's `device_update` sees it (the JobStatus values)."""

    SUCCEEDED = "succeeded"
    UNVERIFIED = "unverified"  # done, but the connection to the Switch was not seen
    AWAITING_TRUST = "awaiting_trust"  # done but for the CA trust (an MDM profile is to bring it)
    FAILED = "failed"


class Keep(Enum):
    KEEP = "keep"


KEEP = Keep.KEEP  # a DeviceUpdate field left as recorded


@dataclass(frozen=True)
class DeviceUpdate:
    """What a finished job says of the device's row (the runner adds last_run_id/outcome/error)."""

    installed_version: str | Keep | None = KEEP
    connected: bool | Keep | None = KEEP

    def columns(self) -> dict[str, str | bool | None]:
        out: dict[str, str | bool | None] = {}
        if not isinstance(self.installed_version, Keep):
            out["installed_version"] = self.installed_version
        if not isinstance(self.connected, Keep):
            out["connected"] = self.connected
        return out


def observed(outcome: Outcome, connected: bool | None, params: object) -> DeviceUpdate:
    """The device row after a job that installs or removes nothing: what verify saw of the connection."""
    if outcome is Outcome.SUCCEEDED:
        return DeviceUpdate(connected=True) if connected else DeviceUpdate()
    if outcome is Outcome.UNVERIFIED:
        return DeviceUpdate(connected=None)  # unknown, not false: converge and `status --refresh` look again
    if outcome is Outcome.FAILED and connected is not None:
        return DeviceUpdate(connected=connected)
    return DeviceUpdate()


class FactColumns(TypedDict, total=False):
    """Device columns a workflow's facts fill (a column its facts do not speak of is left alone)."""

    reported_hostname: str | None
    arch: str | None
    macos_version: str | None
    installed_version: str | None


def mac_fact_columns(facts: Facts) -> FactColumns:
    """The columns of facts that carry the Mac's own (MacFacts.as_json keys); "" is stored as None."""
    doc = facts.as_json()
    out = FactColumns()
    if "hostname" in doc:
        out["reported_hostname"] = doc["hostname"] or None
    if "arch" in doc:
        out["arch"] = doc["arch"] or None
    if "macos_version" in doc:
        out["macos_version"] = doc["macos_version"] or None
    if "client_version" in doc:
        out["installed_version"] = doc["client_version"] or None
    return out


Executed = Sequence[tuple[str, tuple[str, ...]]]
"""(step, argv) of every command that ran OK in a job."""


def none_trusted(params: object, executed: Executed) -> tuple[CaRef, ...]:
    return ()


@dataclass(frozen=True)
class Rollback(Generic[P, F]):
    """What rolling back means for a workflow (with `rollback` in a run's params).

    after: the steps whose failure may leave the new version in (a failure there may roll back).
    previous(facts, params): the version to go back to, None when there is none (or it is the target).
    target(params): the version the job was putting in. params(params, dmg): the same job aimed at the
    previous version's DMG (which the runner finds in the artifact store)."""

    after: frozenset[str]
    previous: Callable[[F, P], str | None]
    target: Callable[[P], str]
    params: Callable[[P, DmgRef], P]


@dataclass(frozen=True)
class Workflow(Generic[P, F]):
    """A workflow: its steps in order, how to gather facts, how to judge verify output, and what its kind
    means to the runner (the runner asks; it knows no kind by name).

    fact_commands(params): named read-only commands run in ONE exec (as root); `parse_facts(params,
    {name: output}, rules)` turns their outputs into the facts record, judging the client log by the run's
    [verify] patterns (`rules`), as its verify step does. judge_verify(facts, params, outputs) reads
    the VERIFY step's command outputs. build_params(inputs): the params of one device's job, from what
    `reads` names (raises ParamsError or ValueError). sample_params(facts or None): params a run could have
    on that Mac, for the capture kit. device_update(outcome, connected, params): the device row after the
    job. fact_columns(facts): the device columns the facts fill. rollback: None when failures never roll
    back. trusted_cas(params, executed): the CAs the job put in the System keychain (audited, so
    `uninstall --remove-ca` removes ours only). stdin_inputs: the named `security -i` style inputs the
    runner makes with the one-time password it re-wraps the device's PFX with."""

    name: str
    steps: tuple[StepDef, ...]
    fact_commands: Callable[[P], tuple[tuple[str, Command], ...]]
    parse_facts: Callable[[P, Mapping[str, ProbeOutput], VerifyRules], F]
    judge_verify: Callable[[F, P, list[ProbeOutput]], VerifyVerdict]
    build_params: Callable[[JobInputs], P]
    sample_params: Callable[[F | None], P]
    reads: frozenset[Read] = frozenset()
    device_update: Callable[[Outcome, bool | None, P], DeviceUpdate] = observed
    fact_columns: Callable[[F], FactColumns] = mac_fact_columns
    rollback: Rollback[P, F] | None = None
    trusted_cas: Callable[[P, Executed], tuple[CaRef, ...]] = none_trusted
    stdin_inputs: Mapping[str, Callable[[P, str], bytes]] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def step(self, name: str) -> StepDef:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)


SAMPLE_RUN_ID = "capture"
SAMPLE_PRIVATE_DIR = "/private/tmp/macfleet-capture"  # never created: a capture runs read-only probes only


@dataclass(frozen=True)
class ProbeOutput:
    """One command's result as the parsers see it (exit status None: it did not run to its end)."""

    argv: tuple[str, ...]
    exit_status: int | None
    stdout: str
    stderr: str
