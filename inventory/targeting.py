"""Pure target resolution for `--group` and `--limit`, shared by every command.

- `--group G` (several allowed): the hosts in any of the groups, including hosts of their child groups,
  recursively. No `--group` means every host. An unknown group is an error that lists the known ones.
- `--limit PATTERN` (several allowed, or one comma-separated list): shell-style globs (`fnmatch`,
  case-sensitive) on host names. Hosts matching any positive pattern are kept (all hosts when there are
  only negative patterns); `!PATTERN` then removes the hosts it matches.
- A selection that ends empty is an error saying which filters emptied it (unless the caller allows it).

Works over an `Inventory` or over any records with `name` and `groups` (database rows, for instance).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Generic, Protocol, TypeVar

from inventory.errors import TargetingError
from inventory.graph import descendants
from inventory.models import HostEntry, Inventory


class Targetable(Protocol):
    """Anything with a host name and the groups it belongs to directly."""

    @property
    def name(self) -> str: ...

    @property
    def groups(self) -> Collection[str]: ...


T = TypeVar("T", bound=Targetable)


@dataclass(frozen=True)
class TargetRecord:
    """A plain (name, groups) record, for callers whose rows do not carry their groups."""

    name: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Selection(Generic[T]):
    """The selected records in input order, and positive `--limit` patterns that matched no host."""

    items: list[T]
    unmatched_patterns: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """The selected host names."""
        return [r.name for r in self.items]


def split_patterns(values: Iterable[str]) -> list[str]:
    """`--limit` values as single patterns: comma lists split, blanks dropped (`a*,b*` → `a*`, `b*`)."""
    out: list[str] = []
    for v in values:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def expand_groups(
    requested: Iterable[str], children: Mapping[str, Collection[str]], known: Collection[str]
) -> set[str]:
    """The requested groups and all their descendants.

    Raises TargetingError for a group not in `known`, listing the known groups. Tolerates cycles.
    """
    out: set[str] = set()
    for name in requested:
        if name not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise TargetingError(f"unknown group {name!r} (known groups: {listed})")
        out |= descendants(name, children)
    return out


def select(
    records: Sequence[T],
    groups: Sequence[str] = (),
    limits: Sequence[str] = (),
    children: Mapping[str, Collection[str]] | None = None,
    require_nonempty: bool = True,
) -> Selection[T]:
    """Apply `--group` and `--limit` to `records` (see the module docstring); input order is kept.

    `children` maps a group to its direct child groups. Raises TargetingError for an unknown group, an
    empty pattern, or (when `require_nonempty`) an empty result.
    """
    children = children or {}
    known: set[str] = set(children)
    for r in records:
        known.update(r.groups)
    pool: list[T] = list(records)
    if groups:
        wanted = expand_groups(groups, children, known)
        pool = [r for r in pool if wanted.intersection(r.groups)]
    patterns = split_patterns(limits)
    positive = [p for p in patterns if not p.startswith("!")]
    negative = [p[1:] for p in patterns if p.startswith("!")]
    if any(not p for p in negative):
        raise TargetingError("'!' must be followed by a pattern in --limit")
    unmatched = [p for p in positive if not any(fnmatchcase(r.name, p) for r in pool)]
    chosen = [
        r
        for r in pool
        if (not positive or any(fnmatchcase(r.name, p) for p in positive))
        and not any(fnmatchcase(r.name, p) for p in negative)
    ]
    if require_nonempty and not chosen:
        raise TargetingError(_empty_message(len(records), groups, len(pool), patterns))
    return Selection(chosen, unmatched)


def select_hosts(
    inv: Inventory, groups: Sequence[str] = (), limits: Sequence[str] = (), require_nonempty: bool = True
) -> Selection[HostEntry]:
    """`select` over an inventory's hosts with its group tree."""
    return select(list(inv.hosts), groups, limits, inv.children_map(), require_nonempty)


def _empty_message(total: int, groups: Sequence[str], in_groups: int, patterns: Sequence[str]) -> str:
    if total == 0:
        return "no devices: the inventory is empty (import one first)"
    parts: list[str] = []
    if groups:
        parts.append(f"--group {', '.join(groups)} ({in_groups} of {total} devices)")
    if patterns:
        parts.append(f"--limit {','.join(patterns)}")
    return "no device matches " + " ".join(parts) if parts else "no device selected"
