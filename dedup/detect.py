"""All duplicate layers over one batch (optionally against an existing corpus), then keep-best."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.clusters import UnionFind
from dedup.embedders.base import Embedder
from dedup.lazy_rows import ChainedRows, as_list, blocks, concat_rows, rows_at
from dedup.minhash import minhash_pairs, signatures
from dedup.normalize import TEXT_HASH_CHARS, shingles, text_hash
from dedup.pairs import DuplicatePair
from dedup.parallel import RAY_MIN_TEXTS
from dedup.semantic import semantic_pairs
from dedup.signatures import signatures_of_texts
from schemas.config import DedupConfig
from schemas.tables import CLUSTERS


@dataclass
class DedupItems:
    """Texts (and optional fact sets) to deduplicate; rank orders keep-best (lower is better).

    Signatures and vectors may be given (persisted from an earlier run) or are computed.
    """

    ids: list[str]
    # Lists and arrays, or lazy columns (dedup.lazy_rows: feature shards read block by block).
    texts: Sequence[str]
    ranks: list[float]
    facts: Sequence[set[str]] | None = None
    text_signatures: np.ndarray | Sequence[Any] | None = None
    fact_signatures: np.ndarray | Sequence[Any] | None = None
    vectors: np.ndarray | Sequence[Any] | None = None
    text_hashes: Sequence[str] | None = None

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


def _concat(old: np.ndarray | Sequence[Any] | None, new: np.ndarray | Sequence[Any] | None) -> Any:
    """Arrays concatenated; a lazy column on either side chained (so it stays lazy)."""
    if old is None or new is None:
        return None
    if isinstance(old, np.ndarray) and isinstance(new, np.ndarray):
        return np.concatenate([old, new]) if len(old) else new
    return ChainedRows(old, new)


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
        text_hashes=concat_rows(a.text_hashes, b.text_hashes)
        if a.text_hashes is not None and b.text_hashes is not None
        else None,
    )


def exact_pairs(hashes: Sequence[str], first_new: int) -> list[DuplicatePair]:
    """Each row from `first_new` on whose hash an earlier row has, paired with the first such row."""
    digests = np.empty(len(hashes), dtype=f"S{TEXT_HASH_CHARS}")
    for positions, block in blocks(hashes):
        digests[positions] = block
    _, first, inverse = np.unique(digests, return_index=True, return_inverse=True)
    original = first[inverse.ravel()]  # np.unique's index is each value's first occurrence
    rows = np.arange(len(digests))
    return [
        DuplicatePair(int(original[i]), int(i), "exact", 1.0)
        for i in np.flatnonzero((original != rows) & (rows >= first_new))
    ]


def token_sets_of(rows: Sequence[Any], tokens: Callable[[Any], set[str]]) -> Callable[[np.ndarray], list[set[str]]]:
    """The token sets of the rows at given positions, read together (one pass over a lazy column)."""
    return lambda positions: [tokens(row) for row in rows_at(rows, positions)]


def find_pairs(items: DedupItems, cfg: DedupConfig, first_new: int = 0) -> list[DuplicatePair]:
    pairs = []
    if cfg.exact:
        hashes = items.text_hashes if items.text_hashes is not None else [text_hash(t) for t in items.texts]
        pairs = exact_pairs(hashes, first_new)
    if cfg.minhash:
        if items.text_signatures is None:
            raise ValueError("the minhash layer needs text signatures: run compute_features first")
        pairs += minhash_pairs(
            token_sets_of(items.texts, lambda text: shingles(text, cfg.shingles)),
            items.text_signatures,
            cfg.num_perm,
            cfg.minhash_threshold,
            "minhash",
            first_new,
        )
    if cfg.semantic and items.vectors is not None:
        pairs += semantic_pairs(items.vectors, cfg.cosine_threshold, cfg.neighbours, first_new, cfg.center_vectors)
    if cfg.facts and items.facts is not None and items.fact_signatures is not None:
        pairs += minhash_pairs(
            token_sets_of(items.facts, set),
            items.fact_signatures,
            cfg.num_perm,
            cfg.facts_threshold,
            "facts",
            first_new,
        )
    return pairs


def cluster_pairs(items: DedupItems, pairs: list[DuplicatePair], first_new: int = 0) -> pa.Table:
    """Union-find over all layers; each cluster keeps its best-ranked member (existing rows first).

    Rows of the existing corpus are always kept and are not reported; each new row gets
    (persona_id, cluster_id, kept, duplicate_of, layer, similarity), clusters in the order of
    their first row, their rows in index order. Rows in no pair (nearly all) are their own
    cluster and are written in bulk; only paired rows go through the union-find.
    """
    forest = UnionFind(sorted({member for pair in pairs for member in (pair.a, pair.b)}))
    strongest: dict[int, DuplicatePair] = {}
    for pair in pairs:
        forest.union(pair.a, pair.b)
        for member in (pair.a, pair.b):
            if member not in strongest or pair.similarity > strongest[member].similarity:
                strongest[member] = pair
    root, keeper = np.arange(len(items)), np.arange(len(items))
    for first, members in forest.groups().items():  # `first`: the union-find root is the smallest row
        root[members] = first
        keeper[members] = min(members, key=lambda i: (i >= first_new, items.ranks[i], items.ids[i]))
    new = np.arange(first_new, len(items))
    new = new[np.lexsort((new, root[new]))]
    ids = pa.array(items.ids, type=pa.string())
    kept = keeper[new] == new
    cluster_ids = ids.take(pa.array(keeper[new]))
    layers: list[str | None] = [None] * len(new)
    similarities: list[float | None] = [None] * len(new)
    slot_of = np.empty(len(items), dtype=np.int64)
    slot_of[new] = np.arange(len(new))
    for member, best in strongest.items():
        if member >= first_new:
            layers[slot_of[member]], similarities[slot_of[member]] = best.layer, float(best.similarity)
    columns = {
        "persona_id": ids.take(pa.array(new)),
        "cluster_id": cluster_ids,
        "kept": pa.array(kept),
        "duplicate_of": pc.if_else(pa.array(kept), pa.scalar(None, pa.string()), cluster_ids),
        "layer": pa.array(layers, type=pa.string()),
        "similarity": pa.array(similarities, type=pa.float64()),
    }
    return pa.table(columns).cast(CLUSTERS)


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
