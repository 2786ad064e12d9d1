"""Quota planning: integer slot counts per stratum cell that sum exactly to N."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from schemas.config import StratumVariable
from schemas.errors import UserInputError
from taxonomy.model import Taxonomy


@dataclass(frozen=True)
class QuotaCell:
    """One joint cell of the strata: its fixed attribute values, target share and slot count."""

    values: tuple[tuple[str, str], ...]
    share: float
    count: int

    @property
    def label(self) -> str:
        return ";".join(f"{attr.split('.')[-1]}={value}" for attr, value in self.values) or "all"


def allocate_largest_remainder(shares: list[float], total: int) -> list[int]:
    """Hamilton's method: floor each exact quota, then hand out what is left by largest remainder."""
    exact = [s * total for s in shares]
    counts = [math.floor(q) for q in exact]
    left = total - sum(counts)
    # Ties go to the earlier cell so the allocation is deterministic.
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[:left]:
        counts[i] += 1
    return counts


def plan_quotas(strata: list[StratumVariable], taxonomy: Taxonomy, population: int) -> list[QuotaCell]:
    """Joint cells from independent marginals (raking against seed tables comes later)."""
    known = taxonomy.attributes()
    for i, variable in enumerate(strata):
        attr = known.get(variable.attribute)
        if attr is None:
            raise UserInputError("run config", f"strata.{i}.attribute",
                                 f"'{variable.attribute}' is not in taxonomy {taxonomy.name}",
                                 "use a categorical or ordinal attribute id from the taxonomy")
        unknown = sorted(set(variable.shares) - set(attr.values))
        if unknown:
            raise UserInputError("run config", f"strata.{i}.shares",
                                 f"values {unknown} are not in {attr.id}'s domain",
                                 f"use values from {sorted(attr.values)}")
    if not strata:
        return [QuotaCell(values=(), share=1.0, count=population)]
    combos = list(itertools.product(*[sorted(v.shares.items()) for v in strata]))
    shares = [math.prod(share for _, share in combo) for combo in combos]
    counts = allocate_largest_remainder(shares, population)
    return [
        QuotaCell(values=tuple((v.attribute, value) for v, (value, _) in zip(strata, combo, strict=True)),
                  share=share, count=count)
        for combo, share, count in zip(combos, shares, counts, strict=True)
    ]


def shortfall(cells: list[QuotaCell], kept_per_label: dict[str, int]) -> dict[str, int]:
    """Slots each cell still lacks: its quota minus the personas it has kept."""
    return {c.label: c.count - kept_per_label.get(c.label, 0) for c in cells
            if c.count > kept_per_label.get(c.label, 0)}


def plan_backfill(cells: list[QuotaCell], missing: dict[str, int]) -> list[QuotaCell]:
    """The cells of the next backfill wave's slots: one per missing persona, in plan order."""
    return [cell for cell in cells for _ in range(missing.get(cell.label, 0))]


def assign_slots(cells: list[QuotaCell], seed: int) -> list[QuotaCell]:
    """Slot i -> its cell, shuffled by the seed so every shard mixes strata."""
    expanded = [cell for cell in cells for _ in range(cell.count)]
    order = np.random.default_rng([seed, 0x51075]).permutation(len(expanded))
    return [expanded[i] for i in order]
