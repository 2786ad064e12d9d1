"""Exact + MinHash-LSH duplicate detection with every candidate pair verified exactly."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
from datasketch import MinHash, MinHashLSH

from dedup.clusters import UnionFind
from dedup.normalize import text_hash, word_shingles
from schemas.config import DedupConfig
from schemas.tables import CLUSTERS


@dataclass(frozen=True)
class DuplicatePair:
    a: str
    b: str
    method: str
    similarity: float


def exact_pairs(ids: list[str], texts: list[str]) -> list[DuplicatePair]:
    first_by_hash: dict[str, str] = {}
    pairs = []
    for pid, text in zip(ids, texts, strict=True):
        digest = text_hash(text)
        if digest in first_by_hash:
            pairs.append(DuplicatePair(first_by_hash[digest], pid, "exact", 1.0))
        else:
            first_by_hash[digest] = pid
    return pairs


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@lru_cache(maxsize=64)
def choose_bands(threshold: float, num_perm: int, fp_weight: float = 0.1,
                 fn_weight: float = 0.9) -> tuple[int, int]:
    """(bands, rows) minimising weighted false-positive + false-negative area of the S-curve.

    P(candidate | Jaccard s) = 1 - (1 - s**r)**b. False negatives weigh 9x more than false
    positives: a missed duplicate is lost for good, a false candidate costs one exact check.
    """
    grid = np.linspace(0.0, 1.0, 501)
    below, above = grid[grid < threshold], grid[grid >= threshold]
    best, best_cost = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = np.trapezoid(1 - (1 - below**rows) ** bands, below) if below.size > 1 else 0.0
            fn = np.trapezoid((1 - above**rows) ** bands, above) if above.size > 1 else 0.0
            cost = fp_weight * fp + fn_weight * fn
            if cost < best_cost:
                best, best_cost = (bands, rows), cost
    return best


def minhash_pairs(ids: list[str], texts: list[str], cfg: DedupConfig) -> list[DuplicatePair]:
    """LSH proposes candidate pairs; only those whose true Jaccard >= threshold are kept."""
    shingles = [word_shingles(t, cfg.shingle_words) for t in texts]
    encoded = [[s.encode() for s in sh] or [b""] for sh in shingles]
    signatures = MinHash.bulk(encoded, num_perm=cfg.num_perm, seed=1)
    bands, rows = choose_bands(cfg.minhash_threshold, cfg.num_perm)
    lsh = MinHashLSH(num_perm=cfg.num_perm, params=(bands, rows))
    pairs = []
    for index, (pid, signature) in enumerate(zip(ids, signatures, strict=True)):
        for other in lsh.query(signature):
            similarity = jaccard(shingles[index], shingles[other])
            if similarity >= cfg.minhash_threshold:
                pairs.append(DuplicatePair(ids[other], pid, "minhash", similarity))
        lsh.insert(index, signature)
    return pairs


def find_duplicates(candidates: pa.Table, cfg: DedupConfig) -> pa.Table:
    """(persona_id, cluster_id, duplicate_of, method, similarity) for every candidate.

    `candidates` needs persona_id, text and rank (lower is better); the best-ranked member
    of each cluster is kept and the rest point at it through duplicate_of.
    """
    ids = candidates.column("persona_id").to_pylist()
    texts = candidates.column("text").to_pylist()
    ranks = dict(zip(ids, candidates.column("rank").to_pylist(), strict=True))
    pairs = exact_pairs(ids, texts) if cfg.exact else []
    pairs += minhash_pairs(ids, texts, cfg)
    forest = UnionFind(ids)
    best_pair: dict[str, DuplicatePair] = {}
    for pair in pairs:
        forest.union(pair.a, pair.b)
        for member in (pair.a, pair.b):
            if member not in best_pair or pair.similarity > best_pair[member].similarity:
                best_pair[member] = pair
    rows = {"persona_id": [], "cluster_id": [], "duplicate_of": [], "method": [], "similarity": []}
    for members in forest.groups().values():
        keeper = min(members, key=lambda pid: (ranks[pid], pid))
        for pid in members:
            pair = best_pair.get(pid)
            rows["persona_id"].append(pid)
            rows["cluster_id"].append(keeper)
            rows["duplicate_of"].append(None if pid == keeper else keeper)
            rows["method"].append(pair.method if pair else None)
            rows["similarity"].append(float(pair.similarity) if pair else np.nan)
    return pa.table(rows, schema=CLUSTERS)
