"""--group / --limit semantics over an Inventory and over plain records."""

from __future__ import annotations

import pytest

from inventory import TargetingError, TargetRecord, loads, select, select_hosts, split_patterns
from inventory.graph import find_cycle

INV = loads(
    """
hosts:
  - {name: mac01.lab, groups: [lab-a]}
  - {name: mac02.lab, groups: [lab-b]}
  - {name: mac03.lab, groups: [lab-b, canary]}
  - {name: kiosk1, groups: [kiosk]}
  - {name: loner}
groups:
  lab: {children: [lab-a, lab-b]}
  site: {children: [lab, kiosk]}
  lab-a:
  lab-b:
  kiosk:
  empty:
""",
    "t.yaml",
)


def names(groups: list[str] = [], limits: list[str] = []) -> list[str]:
    return select_hosts(INV, groups, limits).names


def test_no_filter_selects_everything_in_order() -> None:
    assert names() == ["mac01.lab", "mac02.lab", "mac03.lab", "kiosk1", "loner"]


def test_group_includes_children_recursively() -> None:
    assert names(["lab"]) == ["mac01.lab", "mac02.lab", "mac03.lab"]
    assert names(["site"]) == ["mac01.lab", "mac02.lab", "mac03.lab", "kiosk1"]
    assert names(["lab-b"]) == ["mac02.lab", "mac03.lab"]


def test_several_groups_are_a_union() -> None:
    assert names(["lab-a", "kiosk"]) == ["mac01.lab", "kiosk1"]


def test_limit_globs_union_and_exclusion() -> None:
    assert names(limits=["mac0[12]*"]) == ["mac01.lab", "mac02.lab"]
    assert names(limits=["mac01*", "kiosk*"]) == ["mac01.lab", "kiosk1"]
    assert names(limits=["mac01*,kiosk*"]) == ["mac01.lab", "kiosk1"]
    assert names(limits=["!mac*"]) == ["kiosk1", "loner"]
    assert names(["lab"], ["*", "!mac02*"]) == ["mac01.lab", "mac03.lab"]


def test_limit_is_case_sensitive() -> None:
    with pytest.raises(TargetingError):
        names(limits=["MAC*"])


def test_unknown_group_lists_known_ones() -> None:
    with pytest.raises(TargetingError) as e:
        names(["lba"])
    assert str(e.value) == "unknown group 'lba' (known groups: canary, empty, kiosk, lab, lab-a, lab-b, site)"


def test_empty_selection_is_a_clear_error() -> None:
    with pytest.raises(TargetingError, match=r"no device matches --group empty \(0 of 5 devices\)"):
        names(["empty"])
    with pytest.raises(
        TargetingError, match=r"no device matches --group lab \(3 of 5 devices\) --limit kiosk\*"
    ):
        names(["lab"], ["kiosk*"])
    with pytest.raises(TargetingError, match="the inventory is empty"):
        select([], [], [])
    assert select_hosts(INV, ["empty"], require_nonempty=False).items == []


def test_bang_alone_is_an_error() -> None:
    with pytest.raises(TargetingError, match="'!' must be followed by a pattern"):
        names(limits=["!"])


def test_unmatched_positive_patterns_are_reported() -> None:
    sel = select_hosts(INV, limits=["mac01*", "nothing*"])
    assert sel.names == ["mac01.lab"]
    assert sel.unmatched_patterns == ["nothing*"]


def test_plain_records_with_a_cyclic_tree_terminate() -> None:
    recs = [TargetRecord("a", ("g1",)), TargetRecord("b", ("g2",))]
    sel = select(recs, ["g1"], [], {"g1": ["g2"], "g2": ["g1"]})
    assert sel.names == ["a", "b"]


def test_split_patterns() -> None:
    assert split_patterns(["a*, b*", "", " c ", "!d"]) == ["a*", "b*", "c", "!d"]


def test_find_cycle() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b", "a"]
    assert find_cycle({"x": ["x"]}) == ["x", "x"]
