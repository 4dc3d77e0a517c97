"""The reconfigure workflow: conf settings through `1E.Client.updateconf.sh`, restart, verify connected.

Keys are installer property names (SWITCH, BACKGROUNDCHANNELURL, LOGGINGLEVEL, ...; case-insensitive, as
updateconf.sh takes them), validated by `validate_conf_keys` before anything runs. Rules:
- check: the client must be installed (the conf and updateconf.sh exist) → else ClientNotInstalled.
- update: only the pairs whose conf value differs (LoggingLevel compared case-insensitively: the script
  stores its canonical spelling) go to `sh updateconf.sh CONF KEY=VALUE...`; none differs → noop.
- restart: something changed, or the client is not running and connected → `kickstart -k` when loaded,
  else `load -w`; otherwise noop.
- verify: connected (install's judge, from the restart on), by the log or a socket to the new Switch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tasks.facts import CONF, UPDATECONF, ClientFacts, client_fact_commands, parse_client_facts
from tasks.install.explain import _last_line
from tasks.install.verify import LOG_MARK, connected_commands, judge_connected
from tasks.model import (
    SAMPLE_RUN_ID,
    Command,
    FailureReason,
    JobInputs,
    Phase,
    Plan,
    ProbeOutput,
    StepDef,
    VerifyVerdict,
    Workflow,
    checked,
    commands,
    noop,
    refuse,
)
from tasks.service import explain_launchctl, kickstart_command, load_command

# installer property -> conf key (the 1E guide's "installer properties" that updateconf.sh maps)
PROPERTIES: dict[str, str] = {
    "SWITCH": "Switch",
    "BACKGROUNDCHANNELURL": "BackgroundChannelUrl",
    "LOGGINGLEVEL": "LoggingLevel",
    "LOGFILE": "LogFile",
    "LOGFILESIZE": "LogFileSize",
    "MODULE.INVENTORY.ENABLED": "Module.Inventory.Enabled",
    "MODULE.INTERACTION.ENABLED": "Module.Interaction.Enabled",
}
LOGGING_LEVELS = ("Error", "Warning", "Normal", "Info", "Debug", "Trace")
_SWITCH = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}$")
_URL = re.compile(r"^https?://\S+$")
_BOOL = ("true", "false")


def validate_conf_keys(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The pairs with keys upper-cased and values checked; ValueError (naming the allowed keys) for an
    unknown key, a repeated key, an empty value, a line break, or a value the key cannot take."""
    out: dict[str, str] = {}
    for key, value in pairs:
        k = key.strip().upper()
        if k not in PROPERTIES:
            raise ValueError(f"unknown conf key {key!r}; allowed: {', '.join(PROPERTIES)}")
        if k in out:
            raise ValueError(f"conf key {k} given twice")
        if not value or value != value.strip() or any(c in value for c in "\r\n\0"):
            raise ValueError(f"{k}: empty value, surrounding blanks or a line break: {value!r}")
        if k == "SWITCH" and not all(_SWITCH.match(s.strip()) for s in value.split(";")):
            raise ValueError(f"SWITCH: expected host:port (several separated by ';'), got {value!r}")
        if k == "BACKGROUNDCHANNELURL" and not all(_URL.match(s.strip()) for s in value.split(";")):
            raise ValueError(f"BACKGROUNDCHANNELURL: expected https://... (';'-separated), got {value!r}")
        if k == "LOGGINGLEVEL" and value.lower() not in (x.lower() for x in LOGGING_LEVELS):
            raise ValueError(f"LOGGINGLEVEL: one of {', '.join(LOGGING_LEVELS)}, got {value!r}")
        if k == "LOGFILESIZE" and not value.isdigit():
            raise ValueError(f"LOGFILESIZE: a number of bytes, got {value!r}")
        if k.endswith(".ENABLED") and value.lower() not in _BOOL:
            raise ValueError(f"{k}: true or false, got {value!r}")
        out[k] = value
    if not out:
        raise ValueError(f"no conf key given; allowed: {', '.join(PROPERTIES)}")
    return tuple(out.items())


@dataclass(frozen=True)
class ReconfigureParams:
    run_id: str
    pairs: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "pairs", validate_conf_keys(self.pairs))

    @property
    def switch(self) -> str | None:
        return dict(self.pairs).get("SWITCH")

    def as_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "pairs": [list(p) for p in self.pairs]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReconfigureParams:
        extra = set(data) - {"run_id", "pairs"}
        if extra:
            raise ValueError(f"ReconfigureParams: unknown {sorted(extra)}")
        return cls(str(data["run_id"]), tuple((str(k), str(v)) for k, v in data["pairs"]))


def differing(facts: ClientFacts, params: ReconfigureParams) -> tuple[tuple[str, str], ...]:
    conf = facts.mac.conf or {}
    out = []
    for prop, value in params.pairs:
        have = conf.get(PROPERTIES[prop])
        same = have is not None and (
            have.lower() == value.lower() if prop == "LOGGINGLEVEL" else have == value
        )
        if not same:
            out.append((prop, value))
    return tuple(out)


def check(facts: ClientFacts, params: ReconfigureParams) -> Plan:
    if facts.mac.conf is None or UPDATECONF not in facts.present:
        return refuse(
            "ClientNotInstalled",
            f"{CONF} or {UPDATECONF} is missing",
            "install the client first: orchestrate deploy",
        )
    return noop("the client's conf and updateconf.sh are there")


def update(facts: ClientFacts, params: ReconfigureParams) -> Plan:
    if (refused := check(facts, params)).refusal is not None:
        return refused
    diff = differing(facts, params)
    if not diff:
        return noop("the conf already holds " + ", ".join(f"{k}={v}" for k, v in params.pairs))
    return commands(Command(("/bin/sh", UPDATECONF, CONF, *(f"{k}={v}" for k, v in diff))))


def restart(facts: ClientFacts, params: ReconfigureParams) -> Plan:
    if (refused := check(facts, params)).refusal is not None:
        return refused
    if not differing(facts, params) and facts.mac.connected:
        return noop("nothing changed and the client is connected")
    return commands(LOG_MARK, kickstart_command(kill=True) if facts.mac.job.loaded else load_command())


def verify(facts: ClientFacts, params: ReconfigureParams) -> Plan:
    """The poll, for the new Switch when SWITCH is given (its socket), else the conf's."""
    return commands(*connected_commands(params.switch or (facts.mac.conf or {}).get("Switch")))


def judge_verify(facts: ClientFacts, params: ReconfigureParams, outputs: list[ProbeOutput]) -> VerifyVerdict:
    """install's judge: the log is read from the restart on, so a connected line is the new conf's; the
    socket must reach the new Switch's port."""
    return judge_connected(outputs)


def explain_updateconf(
    argv: tuple[str, ...], status: int | None, stdout: str, stderr: str
) -> FailureReason | None:
    text = f"{stdout}\n{stderr}"
    last = _last_line(stdout, stderr)
    if "unknown property" in text or "invalid" in text.lower():
        return FailureReason("InvalidConfKey", last, f"allowed keys: {', '.join(PROPERTIES)}")
    if "Permission denied" in text:
        return FailureReason("PermissionDenied", last, "updateconf.sh must run as root (sudo)")
    if "No such file" in text:
        return FailureReason("ClientNotInstalled", last, "install the client first: orchestrate deploy")
    return FailureReason("UpdateConfFailed", last)


def build_params(job: JobInputs) -> ReconfigureParams:
    pairs = [list(pair) for pair in job.run_params.get("pairs", [])]
    doc = {"run_id": job.run_id, "pairs": pairs}
    return checked("reconfigure", job, lambda: ReconfigureParams.from_json(doc))


def sample_params(facts: ClientFacts | None) -> ReconfigureParams:
    """The Mac's own Switch, so the planners name every probe they use."""
    conf = dict(facts.mac.conf or {}) if facts is not None else {}
    return ReconfigureParams(SAMPLE_RUN_ID, (("SWITCH", conf.get("Switch") or "switch.invalid:443"),))


RECONFIGURE = Workflow(
    name="reconfigure",
    steps=(
        StepDef("check", check, description="the client is installed"),
        StepDef("update", update, explain=explain_updateconf, description="1E.Client.updateconf.sh"),
        StepDef("restart", restart, explain=explain_launchctl, description="kickstart -k"),
        StepDef("verify", verify, phase=Phase.VERIFY, description="connected (to the new Switch)"),
    ),
    fact_commands=lambda params: client_fact_commands(),
    parse_facts=lambda params, outputs, rules: parse_client_facts(outputs, rules),
    judge_verify=judge_verify,
    build_params=build_params,
    sample_params=sample_params,
)
