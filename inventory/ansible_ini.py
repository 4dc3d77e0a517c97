"""Ansible INI inventories: `[group]` host lines, `[group:children]`, `[group:vars]`, ranges.

Follows Ansible's INI inventory plugin: host lines are split like a shell would (quotes group words, `#`
starts a comment) and inline `key=value` values are read as Python literals when they are one (`2222` is a
number, `"x y"` text); values in `:vars` sections are always text. Lines before the first section are
ungrouped hosts. See `inventory.ansible_common` for how variables map onto our fields.
"""

from __future__ import annotations

import ast
import re
import shlex

from inventory.ansible_common import AnsibleData, build_from_ansible, expand_host_pattern
from inventory.build import InventoryBuilder, Located
from inventory.errors import InventoryError
from inventory.models import Inventory

_SECTION = re.compile(r"^\[([^\]\s]+)\]\s*(?:[#;].*)?$")
_HOST_PORT = re.compile(r"^(.+?):([0-9]+)$")
_LITERAL_MAX = 10_000


def load_ansible_ini(text: str, file: str = "<inventory>") -> Inventory:
    """Parse an Ansible INI inventory; raises InventoryError naming file, line and field."""
    b = InventoryBuilder(file)
    data = AnsibleData()
    data.group("all", None)
    group, kind = "ungrouped", "hosts"
    for lineno, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            m = _SECTION.match(line)
            if m is None:
                b.problem(lineno, "section", f"malformed section header {line!r}")
                group, kind = "", "skip"
                continue
            group, _, kind = m.group(1).partition(":")
            kind = kind or "hosts"
            if kind not in ("hosts", "children", "vars"):
                b.problem(
                    lineno, f"groups.{group}", f"unknown section kind ':{kind}' (expected :children or :vars)"
                )
                kind = "skip"
                continue
            data.group(group, lineno)
            continue
        if kind == "skip":
            continue
        if kind == "vars":
            key, eq, value = line.partition("=")
            if not eq or not key.strip():
                b.problem(lineno, f"groups.{group}.vars", f"expected KEY=VALUE, got {line!r}")
                continue
            data.group(group, lineno).vars[key.strip()] = Located(value.strip(), lineno)
        elif kind == "children":
            name = line.split("#", 1)[0].strip()
            data.group(group, lineno).children.append(Located(name, lineno))
        else:
            _host_line(b, data, group, line, lineno)
    if b.problems:
        # Structural problems first: mapping half-read sections would only add noise.
        raise InventoryError(b.problems)
    return build_from_ansible(data, b)


def _host_line(b: InventoryBuilder, data: AnsibleData, group: str, line: str, lineno: int) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as e:
        b.problem(lineno, f"groups.{group}.hosts", f"cannot split the host line: {e}")
        return
    if not tokens:
        return
    pattern, rest = tokens[0], tokens[1:]
    host_vars: dict[str, Located] = {}
    m = _HOST_PORT.match(pattern)
    if m and ":" not in m.group(1):  # `mac01:2222`; an IPv6 address has several colons and no port here
        pattern = m.group(1)
        host_vars["ansible_port"] = Located(int(m.group(2)), lineno)
    for tok in rest:
        key, eq, value = tok.partition("=")
        if not eq or not key:
            b.problem(lineno, f"hosts.{pattern}", f"expected KEY=VALUE after the host name, got {tok!r}")
            return
        host_vars[key] = Located(_literal(value), lineno)
    try:
        names = expand_host_pattern(pattern)
    except ValueError as e:
        b.problem(lineno, f"hosts.{pattern}", str(e))
        return
    for name in names:
        data.add_host(group, name, lineno, dict(host_vars))


def _literal(value: str) -> object:
    """A Python literal when `value` is one (as Ansible does for inline host vars), else the text itself."""
    if len(value) > _LITERAL_MAX:
        return value
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value
    if isinstance(parsed, tuple):
        return list(parsed)
    if isinstance(parsed, str | int | float | bool | list | dict) or parsed is None:
        return parsed
    return value
