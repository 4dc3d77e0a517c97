"""CSV inventories: one row a device, a header row naming the columns. Load and dump.

Columns: `name` (required), `address`, `port`, `user`, `auth`, `expected_hostname`, `groups` (names
separated by `;`, `,` or spaces) and `vars.KEY` for each variable (text values). An empty cell means the field
is absent (the default applies; an empty variable is not stored). Any other column is an error.
"""

from __future__ import annotations

import csv
import io

from inventory.build import HOST_FIELDS, InventoryBuilder, Located, RawHost
from inventory.errors import InventoryError
from inventory.models import Inventory

VAR_PREFIX = "vars."
_COLUMNS = tuple(f for f in HOST_FIELDS if f != "vars")


def load_csv(text: str, file: str = "<inventory>") -> Inventory:
    """Parse a CSV inventory; raises InventoryError naming file, line and column for any problem."""
    b = InventoryBuilder(file)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise b.fail(reader.line_num or 1, "header", f"malformed CSV: {e}") from None
    if header is None:
        return b.build()
    columns = [c.strip() for c in header]
    for i, col in enumerate(columns):
        if col in _COLUMNS:
            if col in columns[:i]:
                b.problem(1, col, "duplicate column")
        elif col.startswith(VAR_PREFIX):
            if col in columns[:i]:
                b.problem(1, col, "duplicate column")
        else:
            known = ", ".join(_COLUMNS)
            b.problem(
                1, col or f"column {i + 1}", f"unknown column (known: {known}, and vars.NAME for variables)"
            )
    if "name" not in columns:
        b.problem(1, "name", "the header has no 'name' column")
    if b.problems:
        raise InventoryError(b.problems)
    line = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise b.fail(line, "row", f"malformed CSV: {e}") from None
        row_line, line = line, reader.line_num + 1  # a quoted cell may span lines: the row starts here
        if not any(row):  # a blank line; a row of whitespace cells is data and is validated (never dropped)
            continue
        if len(row) != len(columns):
            b.problem(row_line, "row", f"{len(row)} cells, but the header has {len(columns)} columns")
            continue
        cells = dict(zip(columns, row, strict=True))
        fields: dict[str, Located] = {}
        host_vars: dict[str, object] = {}
        for col, cell in cells.items():
            if col == "name" or cell == "":
                continue
            if col.startswith(VAR_PREFIX):
                host_vars[col[len(VAR_PREFIX) :]] = cell
            else:
                fields[col] = Located(cell, row_line)
        if host_vars:
            fields["vars"] = Located(host_vars, row_line)
        b.add_host(RawHost(cells["name"], row_line, fields))
    return b.build()


def dump_csv(inv: Inventory) -> str:
    """A CSV inventory for `inv`. Raises ValueError if a variable is not text or the inventory declares
    groups with children or vars (CSV cannot hold them: use YAML)."""
    if any(g.children or g.vars for g in inv.groups):
        raise ValueError("CSV cannot hold group children or group vars; write YAML instead")
    var_names: list[str] = []
    for h in inv.hosts:
        for k, v in h.vars.items():
            if not isinstance(v, str):
                raise ValueError(f"host {h.name}: variable {k} is not text; CSV holds text variables only")
            if k not in var_names:
                var_names.append(k)
    out = io.StringIO(newline="")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([*_COLUMNS, *(VAR_PREFIX + k for k in var_names)])
    for h in inv.hosts:
        w.writerow(
            [
                h.name,
                h.address,
                str(h.port),
                h.user or "",
                h.auth.to_ref() if h.auth else "",
                h.expected_hostname or "",
                ";".join(h.groups),
                *(str(h.vars.get(k, "")) for k in var_names),
            ]
        )
    return out.getvalue()
