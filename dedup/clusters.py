"""Union-find over duplicate pairs, and the keep-best choice within each cluster."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

# Row indices or ids: orderable, so the smaller root is the deterministic one.
Item = TypeVar("Item", int, str)


class UnionFind(Generic[Item]):
    def __init__(self, items: Iterable[Item]) -> None:
        self.parent: dict[Item, Item] = {item: item for item in items}

    def find(self, item: Item) -> Item:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:  # path compression
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: Item, b: Item) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> dict[Item, list[Item]]:
        out: dict[Item, list[Item]] = {}
        for item in self.parent:
            out.setdefault(self.find(item), []).append(item)
        return out
