"""From raw located records (what a loader read, with line numbers) to a validated `Inventory`.

Every loader reduces its format to `RawHost`/`RawGroup` records and hands them to `InventoryBuilder`, so
field checks and whole-inventory checks (duplicates, unknown children, cycles) are the same for all
formats. The builder collects every problem before raising, so one run reports all of them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inventory.errors import InventoryError, Problem
from inventory.models import AuthRef, GroupEntry, HostEntry, Inventory, JSONValue
from inventory.names import (
    address_problem,
    group_name_problem,
    host_name_problem,
    port_problem,
    secret_name_problem,
    text_problem,
    user_problem,
    var_name_problem,
)

HOST_FIELDS = ("name", "address", "port", "user", "auth", "expected_hostname", "groups", "vars")
GROUP_FIELDS = ("name", "children", "vars")
_GROUP_SEPARATORS = re.compile(r"[;,\s]+")
_Check = Callable[[str], "str | None"]  # a name check: a message, or None when valid
_MAX_DEPTH = 64  # nesting of var values; deeper is almost surely a mistake and costs recursion


@dataclass
class Located:
    """A value as read and the 1-based line it was read from (None when unknown)."""

    value: object
    line: int | None


@dataclass
class RawHost:
    """A host as a loader read it: its name and its fields, each with a line; unknown keys included."""

    name: object
    line: int | None
    fields: dict[str, Located] = field(default_factory=dict)


@dataclass
class RawGroup:
    """A declared group as a loader read it."""

    name: object
    line: int | None
    children: list[Located] = field(default_factory=list)
    vars: dict[str, Located] = field(default_factory=dict)
    extra: dict[str, Located] = field(default_factory=dict)  # unknown keys, reported as errors


class InventoryBuilder:
    """Collects raw hosts and groups from one file, validates them and builds an `Inventory`."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self._hosts: list[HostEntry] = []
        self._groups: list[GroupEntry] = []
        self._group_children_lines: dict[str, list[int | None]] = {}

    def problem(self, line: int | None, field_path: str, message: str) -> None:
        """Record a problem (the builder raises them all at `build`)."""
        self.problems.append(Problem(self.file, line, field_path, message))

    def fail(self, line: int | None, field_path: str, message: str) -> InventoryError:
        """An error carrying the problems so far plus this one (for loaders that cannot go on)."""
        self.problem(line, field_path, message)
        return InventoryError(self.problems)

    # -- hosts -----------------------------------------------------------------------------------------

    def add_host(self, raw: RawHost) -> None:
        """Validate one raw host and keep it if it is sound (problems are recorded, not raised)."""
        start = len(self.problems)
        if not isinstance(raw.name, str):
            self.problem(raw.line, "hosts.name", f"{raw.name!r} is not a text host name")
            return
        name = raw.name
        where = f"hosts.{name}"
        bad_name = host_name_problem(name)
        if bad_name:
            self.problem(raw.line, f"{where}.name", bad_name)
        for key, loc in raw.fields.items():
            if key not in HOST_FIELDS or key == "name":
                allowed = ", ".join(HOST_FIELDS[1:])
                self.problem(loc.line, f"{where}.{key}", f"unknown field (known fields: {allowed})")
        f = raw.fields
        address = self._text(f.get("address"), f"{where}.address", address_problem)
        port = self._port(f.get("port"), f"{where}.port")
        user = self._text(f.get("user"), f"{where}.user", user_problem)
        auth = self._auth(f.get("auth"), f"{where}.auth")
        expected = self._text(f.get("expected_hostname"), f"{where}.expected_hostname", host_name_problem)
        groups = self._groups_of(f.get("groups"), f"{where}.groups")
        host_vars = self._vars(f.get("vars"), f"{where}.vars")
        if len(self.problems) > start:
            return
        self._hosts.append(
            HostEntry(
                name=name,
                address=address if address is not None else name,
                port=port if port is not None else 22,
                user=user,
                auth=auth,
                expected_hostname=expected,
                groups=tuple(groups),
                vars=host_vars,
                line=raw.line,
            )
        )

    def _text(self, loc: Located | None, path: str, check: _Check) -> str | None:
        if loc is None or loc.value is None:
            return None
        if not isinstance(loc.value, str):
            self.problem(loc.line, path, f"{loc.value!r} must be text")
            return None
        bad = check(loc.value)
        if bad:
            self.problem(loc.line, path, bad)
            return None
        return loc.value

    def _port(self, loc: Located | None, path: str) -> int | None:
        if loc is None or loc.value is None:
            return None
        value = loc.value
        # CSV and INI carry text; a plain decimal string is a port, anything else is reported as written.
        if isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        bad = port_problem(value)
        if bad:
            self.problem(loc.line, path, bad)
            return None
        assert isinstance(value, int)
        return value

    def _auth(self, loc: Located | None, path: str) -> AuthRef | None:
        if loc is None or loc.value is None:
            return None
        value = loc.value
        kind: str
        arg: object
        if isinstance(value, str):
            kind, sep, arg = value.partition(":")
            if not sep:
                arg = None
        elif isinstance(value, Mapping) and len(value) == 1:
            ((kind, arg),) = value.items()
            if kind == "agent" and arg in (True, None):
                arg = None
        else:
            self.problem(loc.line, path, f"{value!r}: expected 'key:PATH', 'agent' or 'password:SECRET_NAME'")
            return None
        if kind == "agent":
            if arg is not None:
                self.problem(loc.line, path, "'agent' takes no value")
                return None
            return AuthRef("agent")
        if kind in ("key", "password"):
            if not isinstance(arg, str) or not arg:
                self.problem(
                    loc.line, path, f"'{kind}' needs a {'key file path' if kind == 'key' else 'secret name'}"
                )
                return None
            if kind == "key":
                if "\x00" in arg or "\n" in arg or text_problem(arg):
                    self.problem(
                        loc.line, path, "the key file path contains a NUL, a newline or invalid text"
                    )
                    return None
                return AuthRef("key", arg)
            bad = secret_name_problem(arg)
            if bad:
                self.problem(loc.line, path, bad)
                return None
            return AuthRef("password", arg)
        self.problem(
            loc.line,
            path,
            f"unknown auth kind {kind!r}: expected 'key:PATH', 'agent' or 'password:SECRET_NAME'",
        )
        return None

    def _groups_of(self, loc: Located | None, path: str) -> list[str]:
        if loc is None or loc.value is None:
            return []
        value = loc.value
        names: list[object]
        if isinstance(value, str):
            names = [n for n in _GROUP_SEPARATORS.split(value) if n]
        elif isinstance(value, list):
            names = list(value)
        else:
            self.problem(loc.line, path, f"{value!r}: expected a list of group names")
            return []
        out: list[str] = []
        for n in names:
            if not isinstance(n, str):
                self.problem(loc.line, path, f"{n!r} is not a text group name")
                continue
            bad = group_name_problem(n)
            if bad:
                self.problem(loc.line, path, bad)
            elif n not in out:
                out.append(n)
        return out

    def _vars(self, loc: Located | None, path: str) -> dict[str, JSONValue]:
        if loc is None or loc.value is None:
            return {}
        if not isinstance(loc.value, Mapping):
            self.problem(loc.line, path, f"{loc.value!r}: expected a mapping of variable names to values")
            return {}
        return self.vars_from({k: Located(v, loc.line) for k, v in loc.value.items()}, path)

    def vars_from(self, items: Mapping[Any, Located], path: str) -> dict[str, JSONValue]:
        """Validated variables: names as Ansible allows, values JSON-compatible and kept exactly."""
        out: dict[str, JSONValue] = {}
        for key, loc in items.items():
            if not isinstance(key, str):
                self.problem(loc.line, path, f"variable name {key!r} must be text")
                continue
            bad = var_name_problem(key)
            if bad:
                self.problem(loc.line, f"{path}.{key}" if key.isprintable() else path, bad)
                continue
            try:
                out[key] = _json_value(loc.value, 0)
            except _BadValue as e:
                self.problem(loc.line, f"{path}.{key}", str(e))
        return out

    # -- groups ----------------------------------------------------------------------------------------

    def add_group(self, raw: RawGroup) -> None:
        """Validate one declared group and keep it if it is sound."""
        start = len(self.problems)
        if not isinstance(raw.name, str):
            self.problem(raw.line, "groups.name", f"{raw.name!r} is not a text group name")
            return
        where = f"groups.{raw.name}"
        bad = group_name_problem(raw.name)
        if bad:
            self.problem(raw.line, f"{where}.name", bad)
        for key, loc in raw.extra.items():
            self.problem(
                loc.line, f"{where}.{key}", f"unknown field (known fields: {', '.join(GROUP_FIELDS[1:])})"
            )
        children: list[str] = []
        lines: list[int | None] = []
        for child in raw.children:
            if not isinstance(child.value, str):
                self.problem(child.line, f"{where}.children", f"{child.value!r} is not a text group name")
                continue
            bad = group_name_problem(child.value)
            if bad:
                self.problem(child.line, f"{where}.children", bad)
            elif child.value not in children:
                children.append(child.value)
                lines.append(child.line)
        group_vars = self.vars_from(raw.vars, f"{where}.vars")
        if len(self.problems) > start:
            return
        self._groups.append(GroupEntry(raw.name, tuple(children), group_vars, line=raw.line))
        self._group_children_lines[raw.name] = lines

    # -- the whole -------------------------------------------------------------------------------------

    def build(self) -> Inventory:
        """The validated inventory; raises InventoryError listing every problem found."""
        self._check_duplicates()
        inv = Inventory(tuple(self._hosts), tuple(self._groups))
        known = set(inv.group_names())
        for g in inv.groups:
            for child, line in zip(g.children, self._group_children_lines[g.name], strict=True):
                if child not in known:
                    self.problem(
                        line,
                        f"groups.{g.name}.children",
                        f"unknown group {child!r} (known groups: {', '.join(sorted(known)) or 'none'})",
                    )
        if not self.problems:
            self._check_cycles(inv)
        if self.problems:
            raise InventoryError(self.problems)
        return inv

    def _check_duplicates(self) -> None:
        seen: dict[str, HostEntry] = {}
        for h in self._hosts:
            first = seen.get(h.name.lower())
            if first is None:
                seen[h.name.lower()] = h
            elif first.name == h.name:
                self.problem(
                    h.line, f"hosts.{h.name}", f"duplicate host name (first defined at line {first.line})"
                )
            else:
                self.problem(
                    h.line,
                    f"hosts.{h.name}",
                    f"host name differs only in case from {first.name!r} (line {first.line}); "
                    "names must be unique",
                )
        groups: dict[str, GroupEntry] = {}
        for g in self._groups:
            if g.name in groups:
                self.problem(
                    g.line,
                    f"groups.{g.name}",
                    f"duplicate group (first defined at line {groups[g.name].line})",
                )
            else:
                groups[g.name] = g

    def _check_cycles(self, inv: Inventory) -> None:
        children = inv.children_map()
        lines = {g.name: g.line for g in inv.groups}
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        reported: set[frozenset[str]] = set()

        def visit(name: str, path: list[str]) -> None:
            state[name] = 1
            path.append(name)
            for child in children.get(name, ()):
                if state.get(child) == 1:
                    cycle = [*path[path.index(child) :], child]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        self.problem(
                            lines.get(child), f"groups.{child}.children", "group cycle: " + " → ".join(cycle)
                        )
                elif state.get(child) is None:
                    visit(child, path)
            path.pop()
            state[name] = 2

        for name in children:
            if name not in state:
                visit(name, [])


class _BadValue(ValueError):
    pass


def _json_value(value: object, depth: int) -> JSONValue:
    """`value` as plain JSON data (dict subclasses become dicts); raises _BadValue for anything else."""
    if depth > _MAX_DEPTH:
        raise _BadValue(f"nested more than {_MAX_DEPTH} levels deep")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _BadValue(f"{value!r} is not a finite number (JSON cannot hold it)")
        return value
    if isinstance(value, str):
        bad = text_problem(value)
        if bad:
            raise _BadValue(bad)
        return value
    if isinstance(value, list | tuple):
        return [_json_value(v, depth + 1) for v in value]
    if isinstance(value, Mapping):
        out: dict[str, JSONValue] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _BadValue(f"key {k!r} must be text")
            out[k] = _json_value(v, depth + 1)
        return out
    raise _BadValue(f"a {type(value).__name__} value is not supported; quote it to keep it as text")
