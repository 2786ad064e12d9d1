"""Sampling-metric counts straight from a batch's codes: no strings, no second pass over Parquet."""

from __future__ import annotations

from collections import Counter

import numpy as np

from schemas.sample_counts import MetricsScope, SampleCounts
from taxonomy.model import Taxonomy
from taxonomy.presets import VALUE_JOIN, PopulationPreset
from taxonomy.skeleton_batch import SkeletonBatch, domain_of, present_mask


def metrics_scope(taxonomy: Taxonomy, preset: PopulationPreset | None = None) -> MetricsScope:
    tables = tuple((tuple(m.attributes), dict(m.shares), m.citation) for m in (preset.marginals if preset else []))
    return MetricsScope(
        leaf_ids=tuple(taxonomy.attributes()), root_ids=tuple(r.id for r in taxonomy.categories), preset_tables=tables
    )


def _labels(taxonomy: Taxonomy, attr_id: str, values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(small integer codes of the present rows' values, the string of each code)."""
    attr = taxonomy.attributes()[attr_id]
    if attr.kind == "numeric":
        distinct, codes = np.unique(values.astype(np.int64), return_inverse=True)
        return codes, [str(v) for v in distinct.tolist()]
    return values.astype(np.int64), domain_of(attr)


def tally_batch(batch: SkeletonBatch, taxonomy: Taxonomy, variables: list[str], scope: MetricsScope) -> SampleCounts:
    """The counts `batch_to_table` followed by `count_parquet` would give, from the codes directly."""
    n = len(batch)
    counts = SampleCounts(personas=n)
    cell_of = {id(c): c for c in batch.cells}
    for key, count in Counter(id(c) for c in batch.cells).items():  # one label per cell, not per slot
        counts.strata[cell_of[key].label] += count
    per_row = np.zeros(n, dtype=np.int64)
    for attr_id, values in batch.codes.items():
        present = present_mask(values)
        per_row += present
        if used := int(present.sum()):
            counts.leaves[attr_id] = used
    for attr_id, mask in batch.open_text.items():
        per_row += mask
        if used := int(mask.sum()):
            counts.leaves[attr_id] = used
    for attr_id in variables:
        counts.marginals[attr_id] = _value_counts(taxonomy, [attr_id], batch)
    for attributes, _, _ in scope.preset_tables:
        counts.tables[" x ".join(attributes)] = _value_counts(taxonomy, list(attributes), batch)
    if n:
        counts.per_persona_sum = int(per_row.sum())
        counts.per_persona_min, counts.per_persona_max = int(per_row.min()), int(per_row.max())
    return counts


def _value_counts(taxonomy: Taxonomy, attributes: list[str], batch: SkeletonBatch) -> Counter[str]:
    """Personas per joint value ('|'-joined) of the attributes, over rows where all are present."""
    if any(a not in batch.codes for a in attributes):
        return Counter()
    present = np.ones(len(batch), dtype=bool)
    for attr_id in attributes:
        present &= present_mask(batch.codes[attr_id])
    combined = np.zeros(int(present.sum()), dtype=np.int64)
    names: list[list[str]] = []
    for attr_id in attributes:
        codes, strings = _labels(taxonomy, attr_id, batch.codes[attr_id][present])
        combined = combined * len(strings) + codes
        names.append(strings)
    out: Counter[str] = Counter()
    for code, count in zip(*np.unique(combined, return_counts=True), strict=True):
        parts, code = [], int(code)
        for strings in reversed(names):
            code, index = divmod(code, len(strings))
            parts.append(strings[index])
        out[VALUE_JOIN.join(reversed(parts))] = int(count)
    return out
