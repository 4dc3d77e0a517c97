"""Ansible YAML inventories: `all: {hosts: ..., children: ..., vars: ...}` (other top-level groups too).

Host keys may be ranges (`mac[01:20].lab:`). A host listed under several groups is one host; its
variables merge. See `inventory.ansible_common` for how variables map onto our fields.
"""

from __future__ import annotations

from inventory.ansible_common import AnsibleData, build_from_ansible, expand_host_pattern
from inventory.build import InventoryBuilder, Located
from inventory.errors import InventoryError
from inventory.models import Inventory
from inventory.yamlmarks import MarkedDict, load_marked

_GROUP_KEYS = ("hosts", "children", "vars")


def load_ansible_yaml(text: str, file: str = "<inventory>") -> Inventory:
    """Parse an Ansible YAML inventory; raises InventoryError naming file, line and field."""
    doc = load_marked(text, file)
    b = InventoryBuilder(file)
    data = AnsibleData()
    data.group("all", None)
    if doc is None:
        return b.build()
    if not isinstance(doc, MarkedDict):
        raise b.fail(1, "(top)", "expected a mapping of groups (usually just 'all')")
    for name, body in doc.items():
        _group(b, data, name, doc.line_of(name), body, depth=0)
    if b.problems:
        raise InventoryError(b.problems)
    return build_from_ansible(data, b)


def _group(
    b: InventoryBuilder, data: AnsibleData, name: object, line: int | None, body: object, depth: int
) -> None:
    if not isinstance(name, str):
        b.problem(line, "groups", f"{name!r} is not a text group name")
        return
    if depth > 64:
        b.problem(line, f"groups.{name}", "groups nested too deeply")
        return
    g = data.group(name, line)
    if body is None:
        return
    if not isinstance(body, MarkedDict):
        b.problem(line, f"groups.{name}", "a group must be a mapping with hosts, children or vars")
        return
    for key, value in body.items():
        kline = body.line_of(key)
        if key not in _GROUP_KEYS:
            b.problem(kline, f"groups.{name}.{key}", "unknown key (expected hosts, children or vars)")
        elif value is None:
            continue
        elif not isinstance(value, MarkedDict):
            b.problem(kline, f"groups.{name}.{key}", "expected a mapping")
        elif key == "vars":
            for k, v in value.items():
                g.vars[str(k)] = Located(v, value.line_of(k))
        elif key == "hosts":
            for pattern, hvars in value.items():
                hline = value.line_of(pattern)
                if hvars is not None and not isinstance(hvars, MarkedDict):
                    b.problem(hline, f"hosts.{pattern}", "a host's variables must be a mapping")
                    continue
                if not isinstance(pattern, str):
                    b.problem(hline, "hosts", f"{pattern!r} is not a text host name")
                    continue
                try:
                    names = expand_host_pattern(pattern)
                except ValueError as e:
                    b.problem(hline, f"hosts.{pattern}", str(e))
                    continue
                hbody = hvars if hvars is not None else MarkedDict()
                located = {str(k): Located(v, hbody.line_of(k)) for k, v in hbody.items()}
                for host in names:
                    data.add_host(name, host, hline, dict(located))
        else:
            for child, cbody in value.items():
                cline = value.line_of(child)
                g.children.append(Located(child, cline))
                _group(b, data, child, cline, cbody, depth + 1)
