"""Skeleton sampling: draw each slot's attribute values from the taxonomy's priors."""

from __future__ import annotations

import hashlib

import numpy as np

from schemas.records import Skeleton
from taxonomy.loader import sampling_order
from taxonomy.model import Attribute, Condition, Taxonomy
from taxonomy.quotas import QuotaCell


def persona_id_for(seed: int, slot: int) -> str:
    """Deterministic id of a slot: the same seed and slot always give the same id."""
    return "p-" + hashlib.sha256(f"populace:{seed}:{slot}".encode()).hexdigest()[:16]


def condition_holds(condition: Condition, values: dict[str, str]) -> bool:
    actual = values.get(condition.attribute)
    if actual is None:
        return False
    op, expected = condition.op, condition.value
    if op == "in":
        return actual in expected
    if op == "not_in":
        return actual not in expected
    if isinstance(expected, str):
        return (actual == expected) if op == "==" else (actual != expected) if op == "!=" else False
    number = float(actual)
    return {"==": number == expected, "!=": number != expected, ">=": number >= expected,
            "<=": number <= expected, ">": number > expected, "<": number < expected}[op]


def draw_value(attr: Attribute, values: dict[str, str], rng: np.random.Generator) -> str | None:
    """One value for attr given the values drawn so far; None when the LLM writes it (text)."""
    if attr.kind == "numeric":
        low, high = attr.minimum, attr.maximum
        if attr.range_by and values.get(attr.range_by.attribute) in attr.range_by.ranges:
            low, high = attr.range_by.ranges[values[attr.range_by.attribute]]
        return str(int(rng.integers(int(low), int(high) + 1)))
    if attr.kind == "text":
        return None
    weights = attr.values
    if attr.depends_on and values.get(attr.depends_on.attribute) in attr.depends_on.table:
        weights = attr.depends_on.table[values[attr.depends_on.attribute]]
    names = list(weights)
    p = np.asarray([weights[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def sample_skeleton(taxonomy: Taxonomy, order: list[str], cell: QuotaCell, seed: int,
                    slot: int, attempt: int = 0) -> Skeleton:
    """Stratum values are fixed by the plan; every other applicable attribute is drawn.

    `attempt` > 0 is a redraw of the same slot (same id) after a constraint rejected a draw."""
    rng = np.random.default_rng([seed, slot] if attempt == 0 else [seed, slot, attempt])
    attributes = taxonomy.attributes()
    fixed = dict(cell.values)
    values: dict[str, str] = {}
    for attr_id in order:
        attr = attributes[attr_id]
        if attr_id in fixed:
            values[attr_id] = fixed[attr_id]
            continue
        if not all(condition_holds(c, values) for c in attr.applicable_when):
            continue
        value = draw_value(attr, values, rng)
        if value is not None:
            values[attr_id] = value
    # Facts are kept in taxonomy order, the order a reader (and the prompt) expects.
    ordered = {attr_id: values[attr_id] for attr_id in attributes if attr_id in values}
    return Skeleton(persona_id=persona_id_for(seed, slot), slot=slot, stratum=cell.label,
                    attributes=ordered)


def sample_skeletons(taxonomy: Taxonomy, slot_cells: list[QuotaCell], seed: int,
                     slots: range) -> list[Skeleton]:
    """Skeletons for `slots`, where slot_cells[i] is the cell of slot slots[i]."""
    order = sampling_order(taxonomy)
    return [sample_skeleton(taxonomy, order, cell, seed, slot) for slot, cell in zip(slots, slot_cells, strict=True)]
