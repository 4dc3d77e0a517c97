"""A device's live names: what the Mac last said (`orchestrate inventory probe`, or a run's facts).

The facts document (Device.facts_json) holds `hostname`, `local_host_name`, `host_name` and
`computer_name` (tasks/facts.py); which of them a certificate must carry is tasks/hostnames.py's rule."""

from __future__ import annotations

import json

from orchestrator.state.models import Device
from tasks.hostnames import MacNames


def live_names(device: Device) -> MacNames | None:
    """The names the Mac reported, or None when it never reported any (not probed, no run yet)."""
    if not device.facts_json:
        return None
    try:
        doc = json.loads(device.facts_json)
    except ValueError:
        return None
    return MacNames.from_facts(doc) if isinstance(doc, dict) else None


def names_of(device: Device) -> tuple[str, ...]:
    """Every name the device may be known by: its live Sharing-pane name and `hostname`, then the
    inventory's expected host name (or its handle), each once."""
    live = live_names(device)
    found = [live.sharing, live.hostname] if live is not None else []
    return tuple(dict.fromkeys(n for n in [*found, device.target_hostname] if n))


def certificate_name(device: Device, rule: str) -> str:
    """The name to issue a device's certificate for: the one `certs check` asks for (MacNames.preferred:
    the first live name `rule` accepts, else what `hostname` printed), or, never probed, its target host
    name."""
    live = live_names(device)
    return live.preferred(rule) if live is not None else device.target_hostname
