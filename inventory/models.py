"""Typed inventory records: hosts, groups and the inventory that holds them.

These are plain immutable values built by the loaders (which validate them); nothing here does I/O.
Variable values are JSON-compatible data and are kept exactly as written: they are never interpreted as
shell text by anything in this package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

JSONValue: TypeAlias = str | int | float | bool | list["JSONValue"] | dict[str, "JSONValue"] | None

AuthKind = Literal["key", "agent", "password"]


@dataclass(frozen=True)
class AuthRef:
    """How to log in: a private key file on the controller, the SSH agent, or a stored password by name.

    The password itself is never in the inventory: `value` is the name of a secret.
    """

    kind: AuthKind
    value: str | None = None

    def to_ref(self) -> str:
        """The one-string form stored in the database: ``key:PATH``, ``agent`` or ``password:NAME``."""
        return self.kind if self.kind == "agent" else f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class HostEntry:
    """A Mac as the inventory describes it.

    `expected_hostname` is the exact host name the Mac reports (what `hostname` prints), which its client
    certificate must match; None means "the same as `name`". `groups` are the groups the host belongs to
    directly. `line` is where the host was defined (not part of equality).
    """

    name: str
    address: str
    port: int = 22
    user: str | None = None
    auth: AuthRef | None = None
    expected_hostname: str | None = None
    groups: tuple[str, ...] = ()
    vars: Mapping[str, JSONValue] = field(default_factory=dict)
    line: int | None = field(default=None, compare=False, repr=False)

    @property
    def effective_expected_hostname(self) -> str:
        """The host name a certificate must carry: `expected_hostname`, else `name`."""
        return self.expected_hostname or self.name

    def to_dict(self) -> dict[str, JSONValue]:
        """A JSON-ready dict (the golden-test and `--json` shape)."""
        return {
            "name": self.name,
            "address": self.address,
            "port": self.port,
            "user": self.user,
            "auth": self.auth.to_ref() if self.auth else None,
            "expected_hostname": self.expected_hostname,
            "groups": list(self.groups),
            "vars": dict(self.vars),
        }


@dataclass(frozen=True)
class GroupEntry:
    """A declared group: its child groups (members of a child are members of this group) and its vars."""

    name: str
    children: tuple[str, ...] = ()
    vars: Mapping[str, JSONValue] = field(default_factory=dict)
    line: int | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, JSONValue]:
        """A JSON-ready dict."""
        return {"name": self.name, "children": list(self.children), "vars": dict(self.vars)}


@dataclass(frozen=True)
class Inventory:
    """Hosts and declared groups, validated: unique names, known children, no cycles.

    A group a host names but no `groups` section declares is still a group (with no children or vars);
    `group_names()` includes it.
    """

    hosts: tuple[HostEntry, ...] = ()
    groups: tuple[GroupEntry, ...] = ()

    def host(self, name: str) -> HostEntry:
        """The host called `name`; raises KeyError if there is none."""
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def group_names(self) -> list[str]:
        """Every group: declared ones, then the ones only hosts mention, in first-seen order."""
        seen: dict[str, None] = {g.name: None for g in self.groups}
        for h in self.hosts:
            for g in h.groups:
                seen.setdefault(g, None)
        return list(seen)

    def children_map(self) -> dict[str, tuple[str, ...]]:
        """Group name → its direct child groups (every group present, possibly with no children)."""
        out: dict[str, tuple[str, ...]] = {name: () for name in self.group_names()}
        for g in self.groups:
            out[g.name] = g.children
        return out

    def to_dict(self) -> dict[str, JSONValue]:
        """A JSON-ready dict: ``{"hosts": [...], "groups": [...]}``."""
        return {"hosts": [h.to_dict() for h in self.hosts], "groups": [g.to_dict() for g in self.groups]}
