"""Duplicate rates computed the same way for every corpus, ours or another generator's."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from dedup.detect import DedupItems, find_duplicates
from dedup.embedders.base import Embedder
from schemas.config import DedupConfig


def removed_share(clusters: pa.Table) -> float:
    """Share of rows a dedup would remove (members of a cluster other than its keeper)."""
    if clusters.num_rows == 0:
        return 0.0
    kept: int = pc.sum(clusters.column("kept").cast(pa.int64())).as_py()
    total: int = clusters.num_rows
    return 1.0 - kept / total


def personahub_duplicate_rates(texts: Sequence[str], embedder: Embedder | None) -> dict[str, float]:
    """PersonaHub's two settings, each alone: MinHash on word 1-grams, 128 permutations, Jaccard
    0.9; and embedding cosine 0.9. The rate is the share of texts removed as duplicates."""
    items = DedupItems(
        ids=[str(i) for i in range(len(texts))], texts=list(texts), ranks=[float(i) for i in range(len(texts))]
    )
    minhash_only = DedupConfig(preset="personahub", exact=False, semantic=False, facts=False)
    rates = {"minhash_1gram_128perm_jaccard_0.9": removed_share(find_duplicates(items, minhash_only))}
    if embedder is not None:
        cosine_only = DedupConfig(preset="personahub", exact=False, minhash=False, facts=False)
        items = DedupItems(ids=items.ids, texts=items.texts, ranks=items.ranks)
        rates["cosine_0.9"] = removed_share(find_duplicates(items, cosine_only, embedder))
    return rates
