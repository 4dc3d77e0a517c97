"""Typed errors of the inventory package: every problem names the file, the line and the field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an inventory file.

    `field` is a dotted path such as ``hosts.mac01.port`` or ``groups.lab.children``; `line` is 1-based and
    None only when the format carries no position (a value built in code).
    """

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        """``FILE:LINE: FIELD: MESSAGE`` with control characters escaped (a hostile name cannot drive the
        terminal)."""
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return _printable(f"{where}: {self.field}: {self.message}")


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class InventoryError(ValueError):
    """An inventory that cannot be loaded; `problems` lists every problem found (at least one)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("InventoryError needs at least one problem")
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, file: str, line: int | None, field: str, message: str) -> InventoryError:
        """An error with one problem."""
        return cls([Problem(file, line, field, message)])


class TargetingError(ValueError):
    """A `--group`/`--limit` selection that names an unknown group, or selects no device at all."""
