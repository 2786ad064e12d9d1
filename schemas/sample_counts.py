"""Counts that sampling metrics are computed from, whether tallied from codes or read from Parquet."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class SampleCounts:
    personas: int = 0
    strata: Counter[str] = field(default_factory=Counter)  # stratum label -> personas
    marginals: dict[str, Counter[str]] = field(default_factory=dict)  # attribute -> value -> personas
    tables: dict[str, Counter[str]] = field(default_factory=dict)  # "a x b" -> "va|vb" -> personas
    leaves: Counter[str] = field(default_factory=Counter)  # attribute id -> personas that carry it
    per_persona_sum: int = 0
    per_persona_min: int | None = None
    per_persona_max: int | None = None

    def add(self, other: SampleCounts) -> None:
        """Fold another chunk's counts into these."""
        self.personas += other.personas
        self.strata.update(other.strata)
        for name, counts in other.marginals.items():
            self.marginals.setdefault(name, Counter()).update(counts)
        for name, counts in other.tables.items():
            self.tables.setdefault(name, Counter()).update(counts)
        self.leaves.update(other.leaves)
        self.per_persona_sum += other.per_persona_sum
        if other.per_persona_min is not None:
            mins = [m for m in (self.per_persona_min, other.per_persona_min) if m is not None]
            self.per_persona_min = min(mins)
            self.per_persona_max = max(self.per_persona_max or 0, other.per_persona_max or 0)


@dataclass(frozen=True)
class MetricsScope:
    """What the metrics are measured against: the taxonomy's leaves and roots, and preset tables."""

    leaf_ids: tuple[str, ...]
    root_ids: tuple[str, ...]
    # (attributes, shares keyed by '|'-joined values, citation) per preset table
    preset_tables: tuple[tuple[tuple[str, ...], dict[str, float], str], ...] = ()
