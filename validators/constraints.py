"""Constraints at sampling time: facts-scope rules (error severity) force a redraw of the slot."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from taxonomy.draws import persona_id_for
from taxonomy.model import Taxonomy
from taxonomy.quotas import QuotaCell
from taxonomy.sampling import redraw_rows, sample_batch
from taxonomy.skeleton_batch import SkeletonBatch, value_strings
from taxonomy.skeleton_table import batch_to_table
from validators.engine import attribute_columns
from validators.rule_pack import Rule, load_rule_pack, violating_ids

MAX_REDRAWS = 50


def facts_constraints(rules: list[Rule]) -> list[Rule]:
    return [r for r in rules if r.scope == "facts" and r.severity == "error"]


def referenced_columns(rules: list[Rule]) -> set[str]:
    """Column names the rules' SQL mentions (a superset is harmless)."""
    return {word for rule in rules for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", rule.when)}


def batch_rule_table(
    batch: SkeletonBatch, rows: np.ndarray, taxonomy: Taxonomy, only: set[str] | None = None
) -> pa.Table:
    """The rule-pack table (one column per attribute, NULL where absent) for some rows of a batch."""
    known = taxonomy.attributes()
    data = {
        "persona_id": pa.array(rows, type=pa.int64()),
        "name": pa.nulls(len(rows), pa.string()),
        "narrative": pa.nulls(len(rows), pa.string()),
    }
    for attr_id, (column, dtype) in attribute_columns(taxonomy).items():
        if only is not None and column not in only:
            continue
        values = batch.codes.get(attr_id)
        if values is None:
            data[column] = pa.nulls(len(rows), dtype)
        elif dtype == pa.float64():
            data[column] = pa.array(values[rows], mask=np.isnan(values[rows]), type=pa.float64())
        else:
            data[column] = value_strings(known[attr_id], values[rows])
    return pa.table(data)


def enforce_constraints(
    batch: SkeletonBatch, taxonomy: Taxonomy, constraints: list[Rule], deep_attributes: int
) -> dict[str, list[str]]:
    """Redraw violating rows (attempt 1, 2, ...) until no constraint fires; in place.

    Returns, per persona id that was redrawn, the rule ids that forced each redraw. A slot still
    violating after MAX_REDRAWS keeps its last draw; validation then rejects it by name.
    """
    redraws: dict[int, list[str]] = {}
    pending = np.arange(len(batch))
    for _ in range(MAX_REDRAWS):
        if not len(pending) or not constraints:
            break
        violated: dict[int, str] = {}
        # The rule table's persona_id column carries the row index here.
        table = batch_rule_table(batch, pending, taxonomy, referenced_columns(constraints))
        for row, rule in violating_ids(table, constraints):
            violated.setdefault(int(row), rule.id)
        for row, rule_id in violated.items():
            redraws.setdefault(row, []).append(rule_id)
        pending = np.array(sorted(violated), dtype=np.int64)
        redraw_rows(batch, pending, taxonomy, deep_attributes)
    return {persona_id_for(batch.seed, int(batch.slots[row])): rules for row, rules in redraws.items()}


def sample_constrained(
    taxonomy: Taxonomy,
    cells: list[QuotaCell],
    seed: int,
    slots: range | np.ndarray,
    deep_attributes: int,
    constraints: list[Rule] | None = None,
) -> tuple[SkeletonBatch, dict[str, list[str]]]:
    """Skeletons for the slots with every facts constraint honoured (the shipped rules' by default),
    and the redraw report."""
    batch = sample_batch(taxonomy, cells, seed, slots, deep_attributes)
    if constraints is None:
        constraints = facts_constraints(load_rule_pack())
    redraws = enforce_constraints(batch, taxonomy, constraints, deep_attributes)
    return batch, redraws


def sample_shard_table(
    taxonomy: Taxonomy, cells: list[QuotaCell], seed: int, slots: range, deep_attributes: int, shard: int
) -> pa.Table:
    """One skeletons shard: constrained sampling (the shipped facts rules) in the shard's table form."""
    batch, redraws = sample_constrained(taxonomy, cells, seed, slots, deep_attributes)
    return batch_to_table(batch, taxonomy, redraws, shard)
