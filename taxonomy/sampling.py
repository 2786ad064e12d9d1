"""Skeleton sampling, vectorised over slots: stratum values fixed by the plan, the rest drawn
from the taxonomy's priors (through depends_on, range_by and applicable_when), plus K deep
attributes per persona chosen by taxonomy.selection.

Every random number is a hash of (seed, slot, attribute, attempt), so a slot's draw does not
depend on which other slots are sampled with it, on the batch size or on the shard layout:
backfill waves, resumed runs and `populace sample` all give the same slot the same skeleton.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from schemas.records import Skeleton
from taxonomy.draws import persona_id_for, stream_of, uniforms
from taxonomy.loader import parents_of, sampling_order
from taxonomy.model import Attribute, Condition, Taxonomy
from taxonomy.names import names_for_batch
from taxonomy.quotas import QuotaCell
from taxonomy.selection import select_deep_attributes
from taxonomy.skeleton_batch import SkeletonBatch, domain_of, present_mask, value_strings


def condition_holds(condition: Condition, values: dict[str, str]) -> bool:
    """One condition on one persona's facts (used by validators on single records)."""
    actual = values.get(condition.attribute)
    if actual is None:
        return False
    op, expected = condition.op, condition.value
    if isinstance(expected, list):  # in / not_in (Condition checks that the value fits the op)
        return (actual in expected) if op == "in" else (actual not in expected)
    if isinstance(expected, str):
        return (actual == expected) if op == "==" else (actual != expected) if op == "!=" else False
    number = float(actual)
    return {
        "==": number == expected,
        "!=": number != expected,
        ">=": number >= expected,
        "<=": number <= expected,
        ">": number > expected,
        "<": number < expected,
    }[op]


def condition_mask(condition: Condition, batch: SkeletonBatch, taxonomy: Taxonomy) -> np.ndarray:
    parent = taxonomy.attributes()[condition.attribute]
    values = batch.codes[condition.attribute]
    present = present_mask(values)
    if parent.kind == "numeric":
        value = condition.value
        assert not isinstance(value, list | str), "the loader compares numeric attributes with numbers only"
        expected = float(value)
        with np.errstate(invalid="ignore"):
            result = {
                "==": values == expected,
                "!=": values != expected,
                ">=": values >= expected,
                "<=": values <= expected,
                ">": values > expected,
                "<": values < expected,
            }[condition.op]
        numeric_mask: npt.NDArray[np.bool_] = present & result
        return numeric_mask
    domain = domain_of(parent)
    named = condition.value if isinstance(condition.value, list) else [condition.value]
    codes = [domain.index(v) for v in named if v in domain]
    hit = np.isin(values, codes)
    return present & (~hit if condition.op in ("!=", "not_in") else hit)


def applicable_mask(attr: Attribute, batch: SkeletonBatch, taxonomy: Taxonomy) -> np.ndarray:
    mask = np.ones(len(batch), dtype=bool)
    for condition in attr.applicable_when:
        mask &= condition_mask(condition, batch, taxonomy)
    return mask


def _cdf_rows(weight_rows: list[dict[str, float]], domain: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative weights per row, and per row the last value with positive weight."""
    weights = np.array([[row.get(v, 0.0) for v in domain] for row in weight_rows], dtype=np.float64)
    cdf = np.cumsum(weights, axis=1) / weights.sum(axis=1, keepdims=True)
    last = np.array([np.flatnonzero(w > 0)[-1] for w in weights])
    return cdf, last


def draw_attribute(attr: Attribute, batch: SkeletonBatch, rows: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    """Values of `attr` for the given rows (indices into the batch)."""
    u = uniforms(batch.seed, batch.slots[rows], stream_of(attr.id), batch.attempts[rows])
    if attr.kind == "numeric":
        low = np.full(len(rows), attr.minimum)
        high = np.full(len(rows), attr.maximum)
        if attr.range_by:
            parent_domain = domain_of(taxonomy.attributes()[attr.range_by.attribute])
            bounds = np.array([attr.range_by.ranges[v] for v in parent_domain] + [(attr.minimum, attr.maximum)])
            parent = batch.codes[attr.range_by.attribute][rows]
            index = np.where(parent >= 0, parent, len(parent_domain))
            low, high = bounds[index, 0], bounds[index, 1]
        low, high = np.ceil(low), np.floor(high)
        drawn: npt.NDArray[np.float64] = np.minimum(np.floor(low + u * (high - low + 1)), high)
        return drawn
    domain = domain_of(attr)
    if attr.depends_on:
        parent_domain = domain_of(taxonomy.attributes()[attr.depends_on.attribute])
        cdf, last = _cdf_rows([attr.depends_on.table[v] for v in parent_domain] + [attr.values], domain)
        parent = batch.codes[attr.depends_on.attribute][rows]
        index = np.where(parent >= 0, parent, len(parent_domain))
        codes = np.zeros(len(rows), dtype=np.int64)
        for row_index in np.unique(index):  # one searchsorted per parent value, not per row
            members = index == row_index
            codes[members] = np.searchsorted(cdf[row_index], u[members], side="right")
        conditional: npt.NDArray[np.int32] = np.minimum(codes, last[index]).astype(np.int32)
        return conditional
    cdf, last = _cdf_rows([attr.values], domain)
    plain: npt.NDArray[np.int32] = np.minimum(np.searchsorted(cdf[0], u, side="right"), last[0]).astype(np.int32)
    return plain


def _empty(attr: Attribute, n: int) -> np.ndarray:
    return np.full(n, np.nan) if attr.kind == "numeric" else np.full(n, -1, dtype=np.int32)


def sample_batch(
    taxonomy: Taxonomy,
    cells: list[QuotaCell],
    seed: int,
    slots: np.ndarray | range,
    deep_attributes: int,
    attempts: np.ndarray | None = None,
) -> SkeletonBatch:
    """Skeletons for `slots`, where cells[i] is the quota cell of slots[i]."""
    slots = np.asarray(slots, dtype=np.int64)
    batch = SkeletonBatch(
        seed=seed,
        slots=slots,
        cells=list(cells),
        attempts=np.zeros(len(slots), dtype=np.int64) if attempts is None else attempts,
    )
    known = taxonomy.attributes()
    order = sampling_order(taxonomy)
    fixed = _fixed_codes(cells, taxonomy)
    core = set(taxonomy.core_ids()) | set(fixed)  # stratum attributes are reported for everyone
    structural = {p for a in known.values() for p in parents_of(a)}
    n = len(slots)
    everyone = np.arange(n)
    # 1. Core and structural attributes (parents of others) for every slot.
    for attr_id in order:
        if attr_id not in core and attr_id not in structural:
            continue
        _draw_into(batch, known[attr_id], everyone, fixed, taxonomy)
    # 2. K deep attributes per slot, among those that apply to it.
    deep_ids = [a for a in known if a not in core]
    chosen = select_deep_attributes(
        taxonomy,
        deep_ids,
        deep_attributes,
        seed,
        slots,
        lambda attr_id: applicable_mask(known[attr_id], batch, taxonomy),
    )
    for attr_id in order:
        if attr_id in core:
            continue
        rows = chosen.get(attr_id, np.array([], dtype=np.int64))
        if attr_id in structural:
            # Drawn for every slot (children needed it); reported only where chosen.
            keep = np.zeros(n, dtype=bool)
            keep[rows] = True
            batch.codes[attr_id] = np.where(keep, batch.codes[attr_id], _empty(known[attr_id], n))
            continue
        if known[attr_id].kind == "text":
            mask = np.zeros(n, dtype=bool)
            mask[rows] = True
            batch.open_text[attr_id] = mask
            continue
        batch.codes[attr_id] = _empty(known[attr_id], n)
        if len(rows):
            batch.codes[attr_id][rows] = draw_attribute(known[attr_id], batch, rows, taxonomy)
    return batch


def _fixed_codes(cells: list[QuotaCell], taxonomy: Taxonomy) -> dict[str, np.ndarray]:
    """Per stratum attribute, the code each slot's cell fixes (-1 where a cell does not fix it)."""
    known = taxonomy.attributes()
    distinct = list({id(cell): cell for cell in cells}.values())
    position = {id(cell): i for i, cell in enumerate(distinct)}
    cell_index = np.fromiter((position[id(c)] for c in cells), dtype=np.int64, count=len(cells))
    fixed = {}
    for attr_id in sorted({a for cell in distinct for a, _ in cell.values}):
        domain = domain_of(known[attr_id])
        per_cell = np.array(
            [domain.index(dict(c.values)[attr_id]) if attr_id in dict(c.values) else -1 for c in distinct],
            dtype=np.int32,
        )
        fixed[attr_id] = per_cell[cell_index]
    return fixed


def _draw_into(
    batch: SkeletonBatch, attr: Attribute, rows: np.ndarray, fixed: dict[str, np.ndarray], taxonomy: Taxonomy
) -> None:
    n = len(batch)
    if attr.kind == "text":
        batch.open_text[attr.id] = applicable_mask(attr, batch, taxonomy)
        return
    values = _empty(attr, n)
    applies = applicable_mask(attr, batch, taxonomy)
    drawn_rows = rows[applies[rows]]
    if len(drawn_rows):
        values[drawn_rows] = draw_attribute(attr, batch, drawn_rows, taxonomy)
    if attr.id in fixed:
        values = np.where(fixed[attr.id] >= 0, fixed[attr.id], values).astype(values.dtype)
    batch.codes[attr.id] = values


def redraw_rows(batch: SkeletonBatch, rows: np.ndarray, taxonomy: Taxonomy, deep_attributes: int) -> None:
    """Draw the given rows again with their next attempt number, in place."""
    if not len(rows):
        return
    batch.attempts[rows] += 1
    again = sample_batch(
        taxonomy,
        [batch.cells[i] for i in rows],
        batch.seed,
        batch.slots[rows],
        deep_attributes,
        batch.attempts[rows].copy(),
    )
    for attr_id, values in again.codes.items():
        batch.codes[attr_id][rows] = values
    for attr_id, mask in again.open_text.items():
        batch.open_text[attr_id][rows] = mask


def to_skeletons(batch: SkeletonBatch, taxonomy: Taxonomy) -> list[Skeleton]:
    """Row objects for the build (small batches); facts in taxonomy order."""
    known = taxonomy.attributes()
    columns = {a: value_strings(known[a], v).to_pylist() for a, v in batch.codes.items()}
    open_cols = {a: m.tolist() for a, m in batch.open_text.items()}
    names = names_for_batch(batch, taxonomy)
    skeletons = []
    for i, slot in enumerate(batch.slots.tolist()):
        facts = {a: columns[a][i] for a in known if a in columns and columns[a][i] is not None}
        open_attrs = [a for a in known if a in open_cols and open_cols[a][i]]
        skeletons.append(
            Skeleton(
                persona_id=persona_id_for(batch.seed, slot),
                slot=slot,
                stratum=batch.cells[i].label,
                attributes=facts,
                open_attributes=open_attrs,
                name=names[i],
            )
        )
    return skeletons


def sample_skeletons(
    taxonomy: Taxonomy, cells: list[QuotaCell], seed: int, slots: np.ndarray | range, deep_attributes: int = 0
) -> list[Skeleton]:
    """Skeleton rows for `slots` (cells[i] is the cell of slots[i]), without constraint redraws."""
    return to_skeletons(sample_batch(taxonomy, cells, seed, slots, deep_attributes), taxonomy)
