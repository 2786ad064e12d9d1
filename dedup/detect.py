"""All duplicate layers over one batch (optionally against an existing corpus), then keep-best."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from dedup.clusters import UnionFind
from dedup.embedders.base import Embedder
from dedup.lazy_rows import as_list, concat_rows
from dedup.minhash import minhash_pairs, signatures
from dedup.normalize import shingles, text_hash
from dedup.pairs import DuplicatePair
from dedup.parallel import RAY_MIN_TEXTS
from dedup.semantic import center_rows, semantic_pairs
from dedup.signatures import signatures_of_texts
from schemas.config import DedupConfig
from schemas.tables import CLUSTERS


@dataclass
class DedupItems:
    """Texts (and optional fact sets) to deduplicate; rank orders keep-best (lower is better).

    Signatures and vectors may be given (persisted from an earlier run) or are computed.
    """

    ids: list[str]
    texts: Sequence[str]  # a list, or ArrowRows read from stored features (converted row by row)
    ranks: list[float]
    facts: Sequence[set[str]] | None = None
    text_signatures: np.ndarray | None = None
    fact_signatures: np.ndarray | None = None
    vectors: np.ndarray | None = None
    text_hashes: list[str] | None = None

    def __len__(self) -> int:
        return len(self.ids)


def fact_set(attributes: Sequence[tuple[str, str]] | Sequence[dict[str, str]] | dict[str, str]) -> set[str]:
    """The attribute-value signature of a persona: one token per fact (pairs, a dict, or {key, value} entries)."""
    pairs = attributes.items() if isinstance(attributes, dict) else attributes
    return {f"{p['key']}={p['value']}" if isinstance(p, dict) else f"{p[0]}={p[1]}" for p in pairs}


def compute_features(items: DedupItems, cfg: DedupConfig, embedder: Embedder | None) -> DedupItems:
    """Fill in whatever hashes, signatures and vectors the enabled layers need and are missing."""
    if cfg.exact and items.text_hashes is None:
        items.text_hashes = [text_hash(t) for t in items.texts]
    if cfg.minhash and items.text_signatures is None:
        items.text_signatures = signatures_of_texts(as_list(items.texts), cfg.shingles, cfg.num_perm)
    if cfg.facts and items.facts is not None and items.fact_signatures is None:
        items.fact_signatures = signatures(as_list(items.facts), cfg.num_perm)
    if cfg.semantic and embedder is not None and items.vectors is None:
        items.vectors = embed_texts(embedder, as_list(items.texts), cfg)
    return items


def embed_texts(embedder: Embedder, texts: Sequence[str], cfg: DedupConfig) -> np.ndarray:
    """Large corpora on the static embedder go through Ray Data actors, one per CPU."""
    if len(texts) >= RAY_MIN_TEXTS and cfg.embedder.kind == "static":
        import os

        from dedup.parallel import static_vectors_with_ray

        return static_vectors_with_ray(texts, cfg.embedder.model, workers=os.cpu_count() or 1)
    return embedder.embed(texts)


def _concat(old: np.ndarray | None, new: np.ndarray | None) -> np.ndarray | None:
    if old is None or new is None:
        return None
    return np.concatenate([old, new]) if len(old) else new


def concat_items(a: DedupItems, b: DedupItems) -> DedupItems:
    """a's rows then b's; features survive only where both sides have them."""
    return DedupItems(
        ids=a.ids + b.ids,
        texts=concat_rows(a.texts, b.texts),
        ranks=a.ranks + b.ranks,
        facts=concat_rows(a.facts, b.facts) if a.facts is not None and b.facts is not None else None,
        text_signatures=_concat(a.text_signatures, b.text_signatures),
        fact_signatures=_concat(a.fact_signatures, b.fact_signatures),
        vectors=_concat(a.vectors, b.vectors),
        text_hashes=(a.text_hashes + b.text_hashes)
        if a.text_hashes is not None and b.text_hashes is not None
        else None,
    )


def exact_pairs(hashes: Sequence[str], first_new: int) -> list[DuplicatePair]:
    first_by_hash: dict[str, int] = {}
    pairs = []
    for index, digest in enumerate(hashes):
        if digest in first_by_hash:
            if index >= first_new:
                pairs.append(DuplicatePair(first_by_hash[digest], index, "exact", 1.0))
        else:
            first_by_hash[digest] = index
    return pairs


def find_pairs(items: DedupItems, cfg: DedupConfig, first_new: int = 0) -> list[DuplicatePair]:
    pairs = []
    if cfg.exact:
        hashes = items.text_hashes if items.text_hashes is not None else [text_hash(t) for t in items.texts]
        pairs = exact_pairs(hashes, first_new)
    if cfg.minhash:
        if items.text_signatures is None:
            raise ValueError("the minhash layer needs text signatures: run compute_features first")
        pairs += minhash_pairs(
            lambda i: shingles(items.texts[i], cfg.shingles),
            items.text_signatures,
            cfg.minhash_threshold,
            "minhash",
            first_new,
        )
    if cfg.semantic and items.vectors is not None:
        vectors = center_rows(items.vectors) if cfg.center_vectors else items.vectors
        pairs += semantic_pairs(vectors, cfg.cosine_threshold, cfg.neighbours, first_new)
    if cfg.facts and items.facts is not None and items.fact_signatures is not None:
        pairs += minhash_pairs(items.facts.__getitem__, items.fact_signatures, cfg.facts_threshold, "facts", first_new)
    return pairs


def cluster_pairs(items: DedupItems, pairs: list[DuplicatePair], first_new: int = 0) -> pa.Table:
    """Union-find over all layers; each cluster keeps its best-ranked member (existing rows first).

    Rows of the existing corpus are always kept and are not reported; each new row gets
    (persona_id, cluster_id, kept, duplicate_of, layer, similarity).
    """
    forest = UnionFind(range(len(items)))
    strongest: dict[int, DuplicatePair] = {}
    for pair in pairs:
        forest.union(pair.a, pair.b)
        for member in (pair.a, pair.b):
            if member not in strongest or pair.similarity > strongest[member].similarity:
                strongest[member] = pair
    rows: dict[str, list[Any]] = {name: [] for name in CLUSTERS.names}
    for members in forest.groups().values():
        keeper = min(members, key=lambda i: (i >= first_new, items.ranks[i], items.ids[i]))
        for index in members:
            if index < first_new:
                continue
            best = strongest.get(index)
            rows["persona_id"].append(items.ids[index])
            rows["cluster_id"].append(items.ids[keeper])
            rows["kept"].append(index == keeper)
            rows["duplicate_of"].append(None if index == keeper else items.ids[keeper])
            rows["layer"].append(best.layer if best else None)
            rows["similarity"].append(float(best.similarity) if best else None)
    return pa.table(rows, schema=CLUSTERS)


def find_duplicates(
    items: DedupItems, cfg: DedupConfig, embedder: Embedder | None = None, existing: DedupItems | None = None
) -> pa.Table:
    """Cluster table for `items`, optionally deduplicated against an `existing` corpus too."""
    items = compute_features(items, cfg, embedder)
    if existing is None or not len(existing):
        return cluster_pairs(items, find_pairs(items, cfg))
    existing = compute_features(existing, cfg, embedder)
    merged = concat_items(existing, items)  # existing rows keep rank-first via first_new in cluster_pairs
    return cluster_pairs(merged, find_pairs(merged, cfg, first_new=len(existing)), first_new=len(existing))
