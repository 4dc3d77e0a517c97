"""A safe YAML loader that remembers the line of every mapping key and list item.

PyYAML's SafeLoader drops positions and silently keeps the last of two equal keys; inventories need both
(errors name the line; a host defined twice is an error). This loader builds `MarkedDict`/`MarkedList`
(plain dict/list subclasses with line tables), rejects duplicate keys and aliases, and keeps timestamps as
the text written (an inventory value is data: `2024-01-01` stays that string).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from inventory.errors import InventoryError


class MarkedDict(dict[Any, Any]):
    """A dict with `line` (where the mapping starts) and `key_lines` (key → line of the key)."""

    line: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int | None:
        """The line of `key`, else the mapping's own line."""
        return self.key_lines.get(key, self.line)


class MarkedList(list[Any]):
    """A list with `line` (where it starts) and `item_lines` (index → line)."""

    line: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int | None:
        """The line of item `index`, else the list's own line."""
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


class _Reject(Exception):
    def __init__(self, line: int, field: str, message: str) -> None:
        super().__init__(message)
        self.line, self.field, self.message = line, field, message


class _MarkedLoader(yaml.SafeLoader):
    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            ev = self.peek_event()  # type: ignore[no-untyped-call]
            # Aliases can expand exponentially ("billion laughs"); inventories do not need them.
            raise _Reject(
                ev.start_mark.line + 1, "yaml", "YAML aliases (*name) are not supported in inventories"
            )
        return super().compose_node(parent, index)


def _construct_mapping(loader: _MarkedLoader, node: MappingNode) -> MarkedDict:
    loader.flatten_mapping(node)
    out = MarkedDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            raise _Reject(line, "yaml", "a mapping key must be a plain value") from None
        if key in out:
            raise _Reject(line, str(key), f"duplicate key {key!r} (first at line {out.key_lines[key]})")
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


def _construct_sequence(loader: _MarkedLoader, node: SequenceNode) -> MarkedList:
    out = MarkedList()
    out.line = node.start_mark.line + 1
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.item_lines.append(item.start_mark.line + 1)
    return out


def _construct_timestamp_as_text(loader: _MarkedLoader, node: ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_MarkedLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_MarkedLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)
_MarkedLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp_as_text)


NESTED_TOO_DEEPLY = "nested too deeply to be an inventory (hundreds of levels of lists, mappings or groups)"


def load_marked(text: str, file: str) -> Any:
    """Parse one YAML document safely; mappings and lists come back marked with lines.

    Raises InventoryError (file, line, "yaml") on a syntax error, an unsafe or unknown tag, a duplicate key
    or an alias.
    """
    try:
        loader = _MarkedLoader(text)  # the reader checks the characters at once (ReaderError: a YAMLError)
    except yaml.YAMLError as e:
        raise InventoryError.single(file, None, "yaml", _first_line(e)) from None
    try:
        return loader.get_single_data()
    except _Reject as e:
        raise InventoryError.single(file, e.line, e.field, e.message) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        msg = " ".join(x for x in (e.context, e.problem) if x) or "invalid YAML"
        raise InventoryError.single(file, line, "yaml", msg) from None
    except yaml.YAMLError as e:
        raise InventoryError.single(file, None, "yaml", _first_line(e)) from None
    except RecursionError:  # PyYAML composes nested nodes recursively
        raise InventoryError.single(file, None, "yaml", NESTED_TOO_DEEPLY) from None
    finally:
        loader.dispose()


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
