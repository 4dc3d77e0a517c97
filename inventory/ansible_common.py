"""What both Ansible inventory formats share: groups with hosts, children and vars, and the mapping of
Ansible's connection variables onto our host fields.

Ansible variables map over as follows (any other variable stays a variable, kept exactly):
`ansible_host`/`ansible_ssh_host` → address, `ansible_port`/`ansible_ssh_port` → port,
`ansible_user`/`ansible_ssh_user` → user, `ansible_ssh_private_key_file`/`ansible_private_key_file` →
auth `key:PATH`, `macfleet_auth` → auth, `macfleet_expected_hostname` → expected_hostname. Passwords
(`ansible_password`, `ansible_ssh_pass`, `ansible_become_password`, ...) are refused: store them with
`orchestrate secrets` and reference them as `macfleet_auth=password:NAME`.

Connection variables set on a group apply to its hosts with Ansible's precedence (all < parent group <
child group < host). Other variables of `all` and `ungrouped` become host variables (lowest precedence);
other variables of real groups stay group variables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from inventory.build import InventoryBuilder, Located, RawGroup, RawHost
from inventory.models import Inventory

CONNECTION_VARS = {
    "ansible_host": "address",
    "ansible_ssh_host": "address",
    "ansible_port": "port",
    "ansible_ssh_port": "port",
    "ansible_user": "user",
    "ansible_ssh_user": "user",
    "ansible_ssh_private_key_file": "auth:key",
    "ansible_private_key_file": "auth:key",
    "macfleet_auth": "auth",
    "macfleet_expected_hostname": "expected_hostname",
}
SECRET_VARS = frozenset(
    {
        "ansible_password",
        "ansible_ssh_pass",
        "ansible_ssh_password",
        "ansible_become_password",
        "ansible_become_pass",
        "ansible_sudo_pass",
        "ansible_sudo_password",
        "ansible_su_pass",
    }
)
IMPLICIT_GROUPS = ("all", "ungrouped")
_RANGE = re.compile(r"\[([0-9a-zA-Z]+):([0-9a-zA-Z]+)(?::([0-9]+))?\]")
MAX_EXPANSION = 100_000


@dataclass
class AnsibleGroup:
    """A group as Ansible inventories describe it; a group may be described in several places."""

    name: str
    line: int | None
    hosts: list[str] = field(default_factory=list)
    children: list[Located] = field(default_factory=list)
    vars: dict[str, Located] = field(default_factory=dict)


@dataclass
class AnsibleData:
    """Everything read from an Ansible inventory, before mapping onto our model."""

    groups: dict[str, AnsibleGroup] = field(default_factory=dict)
    host_lines: dict[str, int | None] = field(default_factory=dict)
    host_vars: dict[str, dict[str, Located]] = field(default_factory=dict)

    def group(self, name: str, line: int | None) -> AnsibleGroup:
        """The group called `name`, created (declared at `line`) if new."""
        g = self.groups.get(name)
        if g is None:
            g = self.groups[name] = AnsibleGroup(name, line)
        return g

    def add_host(self, group: str, name: str, line: int | None, host_vars: dict[str, Located]) -> None:
        """`name` belongs to `group`; its vars merge over earlier ones (Ansible: the last one wins)."""
        self.host_lines.setdefault(name, line)
        self.host_vars.setdefault(name, {}).update(host_vars)
        g = self.group(group, line)
        if name not in g.hosts:
            g.hosts.append(name)


def expand_host_pattern(pattern: str) -> list[str]:
    """Expand Ansible host ranges: `mac[01:03].lab` → mac01, mac02, mac03 (leading zeros keep the width);
    `[a:c]` letters; `[1:9:2]` a stride. Raises ValueError for a malformed or too large range."""
    m = _RANGE.search(pattern)
    if m is None:
        if "[" in pattern or "]" in pattern:
            raise ValueError(f"{pattern!r}: malformed range (expected [START:END] or [START:END:STRIDE])")
        return [pattern]
    start, end, stride_s = m.group(1), m.group(2), m.group(3)
    stride = int(stride_s) if stride_s else 1
    if stride < 1:
        raise ValueError(f"{pattern!r}: the stride must be at least 1")
    head, tail = pattern[: m.start()], pattern[m.end() :]
    items: list[str]
    if start.isdigit() and end.isdigit():
        a, z = int(start), int(end)
        if a > z:
            raise ValueError(f"{pattern!r}: the range start is after its end")
        if (z - a) // stride + 1 > MAX_EXPANSION:
            raise ValueError(f"{pattern!r}: the range expands to more than {MAX_EXPANSION} hosts")
        width = len(start) if start.startswith("0") else 0
        items = [str(n).zfill(width) for n in range(a, z + 1, stride)]
    elif len(start) == 1 and len(end) == 1 and start.isalpha() and end.isalpha():
        if start > end:
            raise ValueError(f"{pattern!r}: the range start is after its end")
        items = [chr(c) for c in range(ord(start), ord(end) + 1, stride)]
    else:
        raise ValueError(f"{pattern!r}: a range is numbers [01:20] or single letters [a:f]")
    out: list[str] = []
    for item in items:
        out.extend(expand_host_pattern(head + item + tail))
        if len(out) > MAX_EXPANSION:
            raise ValueError(f"{pattern!r}: the range expands to more than {MAX_EXPANSION} hosts")
    return out


def build_from_ansible(data: AnsibleData, b: InventoryBuilder) -> Inventory:
    """Map Ansible groups, hosts and variables onto our model (see the module docstring)."""
    parents: dict[str, set[str]] = {}
    for g in data.groups.values():
        for c in g.children:
            if isinstance(c.value, str):
                parents.setdefault(c.value, set()).add(g.name)
    depth_cache: dict[str, int] = {"all": 0}

    def depth(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name in depth_cache:
            return depth_cache[name]
        if name in seen:  # a cycle; the builder reports it
            return 1
        ps = parents.get(name, set()) - {"all"}
        d = 1 + max((depth(p, seen | {name}) for p in ps), default=0)
        depth_cache[name] = d
        return d

    def ancestors(name: str) -> set[str]:
        out: set[str] = set()
        todo = [name]
        while todo:
            for p in parents.get(todo.pop(), ()):
                if p not in out:
                    out.add(p)
                    todo.append(p)
        return out

    member_of: dict[str, list[str]] = {h: [] for h in data.host_lines}
    for g in data.groups.values():
        for h in g.hosts:
            member_of[h].append(g.name)

    for g in data.groups.values():
        for key, loc in g.vars.items():
            if key in SECRET_VARS:
                b.problem(loc.line, f"groups.{g.name}.vars.{key}", _SECRET_MESSAGE)

    for host, line in data.host_lines.items():
        direct = member_of[host]
        chain: set[str] = {"all"}
        for gname in direct:
            chain.add(gname)
            chain |= ancestors(gname)
        ordered = sorted((gn for gn in chain if gn in data.groups), key=lambda gn: (depth(gn), gn))
        fields: dict[str, Located] = {}
        host_vars: dict[str, Located] = {}
        for gname in ordered:
            for key, loc in data.groups[gname].vars.items():
                if key in CONNECTION_VARS:
                    _set_connection(fields, key, loc)
                elif gname in IMPLICIT_GROUPS and key not in SECRET_VARS:
                    host_vars[key] = loc
        for key, loc in data.host_vars[host].items():
            if key in SECRET_VARS:
                b.problem(loc.line, f"hosts.{host}.vars.{key}", _SECRET_MESSAGE)
            elif key in CONNECTION_VARS:
                _set_connection(fields, key, loc)
            else:
                host_vars[key] = loc
        groups = [gn for gn in direct if gn not in IMPLICIT_GROUPS]
        if groups:
            fields["groups"] = Located(groups, line)
        raw = RawHost(host, line, fields)
        if host_vars:
            # Each variable keeps its own line for error messages.
            checked = b.vars_from(dict(host_vars), f"hosts.{host}.vars")
            raw.fields["vars"] = Located(checked, line)
        b.add_host(raw)

    for g in data.groups.values():
        if g.name in IMPLICIT_GROUPS:
            continue
        b.add_group(
            RawGroup(
                g.name,
                g.line,
                children=list(g.children),
                vars={k: v for k, v in g.vars.items() if k not in CONNECTION_VARS and k not in SECRET_VARS},
            )
        )
    return b.build()


_SECRET_MESSAGE = (
    "passwords are not kept in the inventory: store it with `orchestrate secrets` and set "  # noqa: S105
    "macfleet_auth=password:SECRET_NAME"
)


def _set_connection(fields: dict[str, Located], key: str, loc: Located) -> None:
    target = CONNECTION_VARS[key]
    if target == "auth:key":
        value = loc.value
        fields["auth"] = Located(f"key:{value}" if isinstance(value, str) else value, loc.line)
    else:
        fields[target] = loc
