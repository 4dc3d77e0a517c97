"""The audit log: who did what, when, with which parameters (never a secret's value)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from orchestrator.state.models import AuditEvent

# Parameter names whose values are never written, whatever the caller passes.
_SECRET_KEYS = ("password", "passphrase", "secret", "token", "key")


def _scrub(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        is_reference = k.lower().endswith(("_ref", "_id", "_file", "_env"))
        if any(s in k.lower() for s in _SECRET_KEYS) and not is_reference:
            out[k] = "***"
        elif isinstance(v, Mapping):
            out[k] = _scrub(v)
        else:
            out[k] = v
    return out


def record(
    session: Session, actor: str, action: str, params: Mapping[str, Any], outcome: str = "ok"
) -> AuditEvent:
    """Add an audit event to the session (committed with the caller's transaction)."""
    params_json = json.dumps(_scrub(params), default=str)
    ev = AuditEvent(actor=actor, action=action, params_json=params_json, outcome=outcome)
    session.add(ev)
    return ev
