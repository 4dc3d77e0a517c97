"""Our own YAML inventory format: load and dump. See inventory/FORMAT.md for the full description.

    hosts:                       # a list of hosts ...
      - name: mac01              # RFC 1123 host name; the inventory handle
        address: 10.0.0.11       # IPv4, IPv6 or host name; default: the name
        port: 22                 # 1-65535; default 22
        user: admin              # SSH user; default: the controller's setting
        auth: key:~/.ssh/id_ed25519   # or: agent | password:SECRET_NAME | {key: PATH} | {password: NAME}
        expected_hostname: mac01.lab  # what `hostname` prints on the Mac; default: the name
        groups: [lab, floor2]
        vars: {site: paris}
    # ... or a mapping:  hosts: {mac01: {address: 10.0.0.11}}
    groups:                      # optional; a mapping (or a list of {name: ...})
      lab:
        children: [lab-a]        # every child must be a known group; no cycles
        vars: {wave_size: 5}

Groups that hosts name but `groups` does not declare exist without children or vars.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from inventory.build import GROUP_FIELDS, InventoryBuilder, Located, RawGroup, RawHost
from inventory.errors import InventoryError
from inventory.models import Inventory
from inventory.yamlmarks import MarkedDict, MarkedList, load_marked

TOP_KEYS = ("hosts", "groups")


def load_yaml(text: str, file: str = "<inventory>") -> Inventory:
    """Parse our YAML format; raises InventoryError naming file, line and field for any problem."""
    data = load_marked(text, file)
    b = InventoryBuilder(file)
    if data is None:
        return b.build()
    if not isinstance(data, MarkedDict):
        raise b.fail(1, "(top)", "expected a mapping with 'hosts' and optionally 'groups'")
    for key in data:
        if key not in TOP_KEYS:
            b.problem(data.line_of(key), str(key), "unknown top-level key (expected 'hosts' and 'groups')")
    hosts = data.get("hosts")
    if isinstance(hosts, MarkedList):
        for i, item in enumerate(hosts):
            if not isinstance(item, MarkedDict):
                b.problem(hosts.line_of(i), "hosts", f"{item!r}: each host must be a mapping with a 'name'")
                continue
            if "name" not in item:
                b.problem(item.line, "hosts.name", "a host in a list needs a 'name'")
                continue
            b.add_host(_raw_host(item["name"], item.line_of("name"), item, skip_name=True))
    elif isinstance(hosts, MarkedDict):
        for name, body in hosts.items():
            line = hosts.line_of(name)
            if body is None:
                body = MarkedDict()
            if not isinstance(body, MarkedDict):
                b.problem(line, f"hosts.{name}", "the host's fields must be a mapping")
                continue
            if "name" in body:
                b.problem(
                    body.line_of("name"), f"hosts.{name}.name", "in the mapping form the key is the name"
                )
                continue
            b.add_host(_raw_host(name, line, body, skip_name=False))
    elif hosts is not None:
        b.problem(data.line_of("hosts"), "hosts", "expected a list or a mapping of hosts")
    groups = data.get("groups")
    if isinstance(groups, MarkedDict):
        for name, body in groups.items():
            _add_group(b, name, groups.line_of(name), body)
    elif isinstance(groups, MarkedList):
        for i, item in enumerate(groups):
            if not isinstance(item, MarkedDict) or "name" not in item:
                b.problem(groups.line_of(i), "groups", "each group in a list must be a mapping with a 'name'")
                continue
            body = MarkedDict()
            body.line = item.line
            for k, v in item.items():
                if k != "name":
                    body[k] = v
                    body.key_lines[k] = item.key_lines[k]
            _add_group(b, item["name"], item.line_of("name"), body)
    elif groups is not None:
        b.problem(data.line_of("groups"), "groups", "expected a mapping of groups")
    return b.build()


def _raw_host(name: object, line: int | None, body: MarkedDict, skip_name: bool) -> RawHost:
    fields = {str(k): Located(v, body.line_of(k)) for k, v in body.items() if not (skip_name and k == "name")}
    return RawHost(name, line, fields)


def _add_group(b: InventoryBuilder, name: object, line: int | None, body: object) -> None:
    if body is None:
        body = MarkedDict()
    if not isinstance(body, MarkedDict):
        b.problem(line, f"groups.{name}", "the group's fields must be a mapping (children, vars)")
        return
    raw = RawGroup(name, line)
    for key, value in body.items():
        kline = body.line_of(key)
        if key == "children":
            if value is None:
                continue
            if isinstance(value, MarkedList):
                raw.children = [Located(v, value.line_of(i)) for i, v in enumerate(value)]
            elif isinstance(value, MarkedDict):  # Ansible habit: children as a mapping of names
                raw.children = [Located(k, value.line_of(k)) for k in value]
            else:
                b.problem(kline, f"groups.{name}.children", "expected a list of group names")
        elif key == "vars":
            if value is None:
                continue
            if not isinstance(value, MarkedDict):
                b.problem(kline, f"groups.{name}.vars", "expected a mapping of variable names to values")
                continue
            raw.vars = {k: Located(v, value.line_of(k)) for k, v in value.items()}
        elif key not in GROUP_FIELDS:
            raw.extra[str(key)] = Located(value, kline)
    b.add_group(raw)


def dump_yaml(inv: Inventory) -> str:
    """Our YAML format for `inv`; `load_yaml(dump_yaml(inv)) == inv` for every valid inventory."""
    hosts: list[dict[str, Any]] = []
    for h in inv.hosts:
        d: dict[str, Any] = {"name": h.name}
        if h.address != h.name:
            d["address"] = h.address
        if h.port != 22:
            d["port"] = h.port
        if h.user is not None:
            d["user"] = h.user
        if h.auth is not None:
            d["auth"] = h.auth.to_ref()
        if h.expected_hostname is not None:
            d["expected_hostname"] = h.expected_hostname
        if h.groups:
            d["groups"] = list(h.groups)
        if h.vars:
            d["vars"] = _plain(h.vars)
        hosts.append(d)
    doc: dict[str, Any] = {"hosts": hosts}
    if inv.groups:
        groups: dict[str, Any] = {}
        for g in inv.groups:
            body: dict[str, Any] = {}
            if g.children:
                body["children"] = list(g.children)
            if g.vars:
                body["vars"] = _plain(g.vars)
            groups[g.name] = body or None
        doc["groups"] = groups
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1 << 16)
    # PyYAML's emitter can write some characters raw (U+0085 NEL in a key) that its reader then folds into
    # a space; when the readable form does not read back identical, escape everything non-ASCII instead.
    if yaml.safe_load(text) != doc:
        text = yaml.safe_dump(
            doc, sort_keys=False, allow_unicode=False, default_flow_style=False, width=1 << 16
        )
    return text


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) if isinstance(v, Mapping) else v for k, v in value.items()}


__all__ = ["InventoryError", "dump_yaml", "load_yaml"]
