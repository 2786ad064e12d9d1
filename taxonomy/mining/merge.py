"""Decide what each candidate becomes: support for an existing leaf, part of a new attribute, or rejected.

Pure over vectors: the caller embeds the texts (any Embedder) and passes unit rows, so the
rule is the same on every embedder. Similarity is cosine by FAISS inner product; the
thresholds are numbers in the mining config and the rule's version is written to the report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import faiss
import numpy as np
import numpy.typing as npt

from taxonomy.mining.candidates import Candidate

SIM_TOLERANCE = 1e-6  # float32 inner products of unit rows: a cosine "at" the threshold may read 1 ulp below


@dataclass
class NewAttribute:
    label: str
    kind: str
    members: list[int]  # candidate indices
    conversations: set[str]
    values: Counter[str]  # value -> distinct conversations
    llm_category: str
    home: str | None = None  # node id it attaches to; None: a proposed new subtree
    home_similarity: float = 0.0

    @property
    def support(self) -> int:
        return len(self.conversations)


@dataclass
class MergePlan:
    merged: dict[str, set[str]] = field(default_factory=dict)  # leaf id -> conversations
    merged_candidates: int = 0
    added: list[NewAttribute] = field(default_factory=list)
    rejected: list[NewAttribute] = field(default_factory=list)


def nearest(queries: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(similarity, index) of each query's nearest target row by cosine."""
    if len(targets) == 0 or len(queries) == 0:
        return np.full(len(queries), -1.0, dtype=np.float32), np.full(len(queries), -1, dtype=np.int64)
    index = faiss.IndexFlatIP(targets.shape[1])
    index.add(np.ascontiguousarray(targets, dtype=np.float32))
    sims, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), 1)
    return sims[:, 0], ids[:, 0]


def cluster_rows(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Single-link clusters of rows whose cosine is at or above threshold (FAISS range search)."""
    n = len(vectors)
    if n == 0:
        return []
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    # range_search keeps sims strictly above the radius: step just below the threshold.
    lims, _, ids = index.range_search(np.ascontiguousarray(vectors, dtype=np.float32), threshold - SIM_TOLERANCE)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in ids[lims[i] : lims[i + 1]]:
            a, b = find(i), find(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def plan_merge(
    candidates: list[Candidate],
    candidate_vectors: np.ndarray,
    leaf_ids: list[str],
    leaf_vectors: np.ndarray,
    node_ids: list[str],
    node_vectors: np.ndarray,
    merge_threshold: float,
    attach_threshold: float,
    min_support: int,
) -> MergePlan:
    """Merge candidates into leaves, cluster the rest into new attributes, attach or reject those."""
    plan = MergePlan()
    sims, hits = nearest(candidate_vectors, leaf_vectors)
    leftover = []
    for i, candidate in enumerate(candidates):
        if hits[i] >= 0 and sims[i] >= merge_threshold - SIM_TOLERANCE:
            plan.merged.setdefault(leaf_ids[hits[i]], set()).add(candidate.conversation)
            plan.merged_candidates += 1
        else:
            leftover.append(i)
    if not leftover:
        return plan
    for members in cluster_rows(candidate_vectors[leftover], merge_threshold):
        rows = [leftover[m] for m in members]
        plan_item = _new_attribute(candidates, rows)
        (plan.added if plan_item.support >= min_support else plan.rejected).append(plan_item)
    if plan.added:
        centroids = np.stack([_centroid(candidate_vectors[a.members]) for a in plan.added])
        home_sims, homes = nearest(centroids, node_vectors)
        for attribute, sim, home in zip(plan.added, home_sims, homes, strict=True):
            attribute.home_similarity = float(sim)
            attribute.home = node_ids[home] if home >= 0 and sim >= attach_threshold - SIM_TOLERANCE else None
    return plan


def _new_attribute(candidates: list[Candidate], rows: list[int]) -> NewAttribute:
    members = [candidates[r] for r in rows]
    labels = Counter(c.label for c in members)
    label = min(labels, key=lambda lab: (-labels[lab], len(lab), lab))  # most said, then shortest
    values: Counter[str] = Counter()
    for value in {(c.value, c.conversation) for c in members if c.value}:
        values[value[0]] += 1
    return NewAttribute(
        label=label,
        kind=Counter(c.kind for c in members).most_common(1)[0][0],
        members=rows,
        conversations={c.conversation for c in members},
        values=values,
        llm_category=Counter(c.category for c in members).most_common(1)[0][0],
    )


def _centroid(rows: np.ndarray) -> np.ndarray:
    mean = rows.mean(axis=0)
    norm = np.linalg.norm(mean)
    centroid: npt.NDArray[np.float32] = (mean / norm if norm > 0 else mean).astype(np.float32)
    return centroid
