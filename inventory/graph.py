"""Group-tree helpers over a plain children map (group → direct child groups)."""

from __future__ import annotations

from collections.abc import Collection, Mapping


def find_cycle(children: Mapping[str, Collection[str]]) -> list[str] | None:
    """A cycle as a path that ends where it starts (`["a", "b", "a"]`), or None if the graph has none."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in sorted(children):
        if root in state:
            continue
        path: list[str] = []
        stack: list[tuple[str, list[str]]] = [(root, sorted(children.get(root, ())))]
        state[root] = 1
        path.append(root)
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            child = todo.pop(0)
            if state.get(child) == 1:
                return [*path[path.index(child) :], child]
            if child not in state:
                state[child] = 1
                path.append(child)
                stack.append((child, sorted(children.get(child, ()))))
    return None


def descendants(group: str, children: Mapping[str, Collection[str]]) -> set[str]:
    """`group` and every group below it (cycles tolerated)."""
    out: set[str] = set()
    todo = [group]
    while todo:
        g = todo.pop()
        if g not in out:
            out.add(g)
            todo.extend(children.get(g, ()))
    return out
