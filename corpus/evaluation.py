"""One row of quality metrics per corpus: ours (a run folder) or a reference corpus, computed alike."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from corpus.quality_metrics import (
    char_distinct_n,
    dispersion,
    distinct_n,
    mean_surprisal,
    nearest_neighbour_distance,
    paragraph_out_of_bounds,
    populated,
    self_bleu2,
    template_flags,
    template_overlap,
    vendi_score,
)

Embed = Callable[[list[str]], np.ndarray]
SELF_BLEU_SAMPLE = 200
PAIRWISE_SAMPLE = 500


@dataclass
class CorpusSample:
    """A corpus as the metrics see it: a main text per record, its flattened fields, and its contract."""

    name: str
    texts: list[str]
    records: list[dict[str, object]]  # flattened fields of each record
    required: tuple[str, ...] = ()  # fields every record must fill (HACHIMI: missing required field)
    enums: dict[str, set[str]] = field(default_factory=dict)  # field -> allowed values (outside: hard error)


def hard_errors(sample: CorpusSample) -> list[bool]:
    """Per record: a required field missing or empty, or a value outside its field's enum."""
    out = []
    for fields in sample.records:
        missing = any(fields.get(f) in (None, "") for f in sample.required)
        outside = any(
            str(fields[f]) not in allowed for f, allowed in sample.enums.items() if fields.get(f) not in (None, "")
        )
        out.append(missing or outside)
    return out


def evaluate_sample(
    sample: CorpusSample, embed: Embed, duplicate_rates: dict[str, float], seed: int = 0
) -> dict[str, Any]:
    """Every metric of one corpus; samples (Self-BLEU, pairwise, Vendi) are drawn with `seed`."""
    n = len(sample.texts)
    rng = random.Random(seed)
    order = list(range(n))
    rng.shuffle(order)
    vectors = embed(sample.texts) if n else np.zeros((0, 1), dtype=np.float32)
    pairwise = vectors[order[:PAIRWISE_SAMPLE]]
    flags = template_flags(sample.texts)
    length_warnings = [paragraph_out_of_bounds(t) for t in sample.texts]
    overlap = [template_overlap(fields) for fields in sample.records]
    errors = hard_errors(sample)
    return {
        "records": n,
        # A corpus that declares no required fields or enums has no contract to break: n/a, not 0.
        "hard_error_rate": _rate(errors) if sample.required or sample.enums else None,
        "warning_rate": _rate([a or b for a, b in zip(length_warnings, overlap, strict=True)]),
        "paragraph_length_out_of_80_800": _rate(length_warnings),
        "template_overlap_rate": _rate(overlap),
        "attributes_per_record": float(np.mean([populated(f) for f in sample.records])) if n else 0.0,
        "distinct_1": distinct_n(sample.texts, 1),
        "distinct_2": distinct_n(sample.texts, 2),
        "distinct_3": distinct_n(sample.texts, 3),
        "char_distinct_2_per_record": char_distinct_n(sample.texts, 2),
        "char_distinct_3_per_record": char_distinct_n(sample.texts, 3),
        "self_bleu_2": self_bleu2([sample.texts[i] for i in order[:SELF_BLEU_SAMPLE]]),
        "template_flag_rate": _rate(flags),
        "nearest_neighbour_distance": nearest_neighbour_distance(vectors),
        "attribute_value_surprisal_bits": mean_surprisal(sample.records),
        "mean_pairwise_distance": dispersion(pairwise),
        "vendi_score": vendi_score(pairwise),
        "vendi_sample": len(pairwise),
        **{f"duplicates_{k}": v for k, v in duplicate_rates.items()},
    }


def _rate(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0
