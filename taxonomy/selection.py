"""Deep progressive attribute selection: K extra attributes per persona, spread over root
categories in proportion to their size (at least one per root when K allows) and rotated
through each root's leaves so that the corpus as a whole uses every leaf.

Rotation: each root's leaves are shuffled once per "cycle" (a hash of seed, root and cycle
number); consecutive slots take consecutive, disjoint blocks of that shuffle, so one cycle of
slots covers the root's leaves once before any leaf repeats. A block holds a few spare
candidates, so a persona still gets its share when some leaves do not apply to it (no
partner questions for the never married). Everything is a function of (seed, slot).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from taxonomy.draws import stream_of, uniforms
from taxonomy.model import Taxonomy
from taxonomy.quotas import allocate


def per_root_counts(sizes: dict[str, int], k: int) -> dict[str, int]:
    """K split over roots in proportion to their deep-leaf counts, at least one each when K allows."""
    roots = [r for r, size in sizes.items() if size > 0]
    if not roots or k <= 0:
        return {}
    total = sum(sizes[r] for r in roots)
    minimum = 1 if k >= len(roots) else 0
    allocated = allocate([sizes[r] / total for r in roots], min(k, total), minimum)
    # A root cannot give more leaves than it has; hand the excess to roots with room.
    counts = dict(zip(roots, allocated, strict=True))
    excess = sum(max(0, c - sizes[r]) for r, c in counts.items())
    counts = {r: min(c, sizes[r]) for r, c in counts.items()}
    for r in sorted(roots, key=lambda r: sizes[r] - counts[r], reverse=True):
        take = min(excess, sizes[r] - counts[r])
        counts[r] += take
        excess -= take
    return counts


def _pools(taxonomy: Taxonomy, deep_ids: list[str], k: int) -> list[tuple[str, list[str], int]]:
    """(pool name, leaves, picks per persona): one pool per root, or one pool for all leaves
    when K is smaller than the number of roots (so small K still rotates over every root)."""
    by_root: dict[str, list[str]] = {}
    for attr_id in sorted(deep_ids):
        by_root.setdefault(taxonomy.attributes()[attr_id].root, []).append(attr_id)
    if k < len(by_root):
        return [("all", sorted(deep_ids), min(k, len(deep_ids)))] if k > 0 and deep_ids else []
    counts = per_root_counts({r: len(v) for r, v in by_root.items()}, k)
    return [(root, leaves, counts[root]) for root, leaves in by_root.items() if counts.get(root, 0) > 0]


def select_deep_attributes(
    taxonomy: Taxonomy, deep_ids: list[str], k: int, seed: int, slots: np.ndarray, applies: Callable[[str], np.ndarray]
) -> dict[str, np.ndarray]:
    """attribute id -> the row indices (into `slots`) of the personas that get it."""
    chosen: dict[str, np.ndarray] = {}
    n = len(slots)
    rows = np.arange(n)
    for pool, leaves, picks in _pools(taxonomy, deep_ids, k):
        size = len(leaves)
        candidates = min(size, picks + max(2, math.ceil(picks / 2)))
        per_cycle = max(1, size // candidates)
        cycle, position = np.divmod(slots, per_cycle)
        unique_cycles, inverse = np.unique(cycle, return_inverse=True)
        keys = uniforms(seed, unique_cycles[:, None], stream_of(f"select:{pool}"), np.arange(size)[None, :])
        shuffles = np.argsort(keys, axis=1)
        offsets = (position * candidates)[:, None] + np.arange(candidates)[None, :]
        picked = shuffles[inverse[:, None], offsets % size]  # (n, candidates) leaf indices
        conditional = [i for i, a in enumerate(leaves) if taxonomy.attributes()[a].applicable_when]
        applicable = np.ones((size, n), dtype=bool)
        for i in conditional:
            applicable[i] = applies(leaves[i])
        ok = applicable[picked, rows[:, None]]
        keep = ok & (np.cumsum(ok, axis=1) <= picks)
        kept_rows, kept_cols = np.nonzero(keep)
        kept_leaves = picked[kept_rows, kept_cols]
        order = np.argsort(kept_leaves, kind="stable")
        bounds = np.searchsorted(kept_leaves[order], np.arange(size + 1))
        for i, attr_id in enumerate(leaves):
            chosen[attr_id] = np.sort(kept_rows[order[bounds[i] : bounds[i + 1]]])
    return chosen
