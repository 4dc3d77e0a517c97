"""Which loader reads a file: detection by extension and content, overridable by an explicit format."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal, get_args

from inventory.ansible_ini import load_ansible_ini
from inventory.ansible_yaml import load_ansible_yaml
from inventory.csv_format import load_csv
from inventory.errors import InventoryError
from inventory.models import Inventory
from inventory.native_yaml import TOP_KEYS, load_yaml
from inventory.userfiles import INVENTORY, UserFileError, read_user_file
from inventory.yamlmarks import NESTED_TOO_DEEPLY, MarkedDict, load_marked

Format = Literal["yaml", "csv", "ansible-ini", "ansible-yaml"]
FORMATS: tuple[str, ...] = get_args(Format)

LOADERS: dict[str, Callable[[str, str], Inventory]] = {
    "yaml": load_yaml,
    "csv": load_csv,
    "ansible-ini": load_ansible_ini,
    "ansible-yaml": load_ansible_yaml,
}
_INI_SECTION = re.compile(r"^\s*\[[^\]]+\]\s*$")


def detect_format(filename: str, text: str) -> Format:
    """The format of `text`: `.csv` → csv; `.ini`/`.cfg` → ansible-ini; `.yaml`/`.yml` and anything else by
    content (a YAML mapping whose keys are only `hosts`/`groups` is ours, another mapping is Ansible YAML;
    a `[section]` line is INI; a first line with a `name` column is CSV). Raises InventoryError when
    nothing fits."""
    suffix = Path(filename).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".ini", ".cfg"):
        return "ansible-ini"
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith(("#", ";"))]
    if suffix not in (".yaml", ".yml"):
        if lines and _INI_SECTION.match(lines[0]):
            return "ansible-ini"
        if lines and "," in lines[0] and "name" in [c.strip() for c in lines[0].split(",")]:
            return "csv"
    if not lines:
        return "yaml"
    try:
        doc = load_marked(text, filename)
    except InventoryError:
        if suffix in (".yaml", ".yml"):
            raise
        # Not YAML: an INI file with host lines before its first section.
        return "ansible-ini"
    if isinstance(doc, MarkedDict):
        return "yaml" if set(doc) <= set(TOP_KEYS) else "ansible-yaml"
    if suffix in (".yaml", ".yml"):
        return "yaml"  # the loader reports what is wrong with it
    return "ansible-ini"


def loads(text: str, filename: str = "<inventory>", fmt: str | None = None) -> Inventory:
    """Parse `text` in `fmt` (detected when None); raises InventoryError (with file, line, field)."""
    if fmt is not None and fmt not in LOADERS:
        raise InventoryError.single(
            filename, None, "format", f"unknown format {fmt!r} (known: {', '.join(FORMATS)})"
        )
    try:
        chosen = fmt or detect_format(filename, text)
        return LOADERS[chosen](text, filename)
    except RecursionError:  # the loaders walk nested groups recursively; no real inventory nests this deep
        raise InventoryError.single(filename, None, "file", NESTED_TOO_DEEPLY) from None


def load_file(path: str | Path, fmt: str | None = None) -> Inventory:
    """Read and parse the inventory file at `path` (UTF-8, a BOM allowed).

    Raises InventoryError for a missing, unreadable, oversized or non-UTF-8 file and for any content problem.
    """
    name = str(path)
    try:
        data = read_user_file(path, INVENTORY)
    except UserFileError as e:
        raise InventoryError.single(name, None, "file", e.reason) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InventoryError.single(name, line, "file", "not UTF-8 text") from None
    return loads(text, name, fmt)
