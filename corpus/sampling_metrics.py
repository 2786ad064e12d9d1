"""How well skeletons follow their plan and cover the taxonomy, from counts: tallied from codes
while sampling (`populace sample`), or read from Parquet with DuckDB (a build's personas).

- per stratum variable and for the joint cells: max absolute deviation, total variation
  distance (TVD) and KL(produced || plan) of the produced shares against the planned shares;
- preset fit: the same for every preset table (census marginals), stratified on or not;
- leaf coverage (share of taxonomy leaves used at least once) and its normalised entropy;
- attributes per persona (facts plus open text attributes) and the share of facts per root.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from corpus.run_folder import read_parquet_sql, sql_string
from schemas.sample_counts import MetricsScope, SampleCounts

if TYPE_CHECKING:
    from taxonomy.quotas import QuotaCell


def distance(produced: dict[str, float], planned: dict[str, float]) -> dict[str, float]:
    """Max |p - q|, TVD = sum|p - q| / 2 and KL(p || q) in nats (inf where p has mass q lacks)."""
    keys = set(produced) | set(planned)
    diffs = [abs(produced.get(k, 0.0) - planned.get(k, 0.0)) for k in keys]
    kl = 0.0
    for k in keys:
        p, q = produced.get(k, 0.0), planned.get(k, 0.0)
        if p > 0:
            kl = math.inf if q <= 0 else kl + p * math.log(p / q)
    return {"max_abs_dev": max(diffs, default=0.0), "tvd": sum(diffs) / 2, "kl": kl}


def normalised_entropy(counts: list[int]) -> float:
    total = sum(counts)
    if total == 0 or len(counts) < 2:
        return 0.0
    return -sum(c / total * math.log(c / total) for c in counts if c) / math.log(len(counts))


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {key: n / total for key, n in counts.items()} if total else {}


def cell_label(values: Sequence[Sequence[str]]) -> str:
    return ";".join(f"{a.split('.')[-1]}={v}" for a, v in values) or "all"


def stratum_variables(cells: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(a for c in cells for a, _ in c["values"]))


def table_name(attributes: tuple[str, ...] | list[str]) -> str:
    return " x ".join(attributes)


def metrics_from_counts(counts: SampleCounts, cells: list[dict[str, Any]], scope: MetricsScope) -> dict[str, Any]:
    """Plan fit, preset fit, coverage and depth from counts, against plan cells [{values, share, count}]."""
    out: dict[str, Any] = {"personas": counts.personas}
    label = {cell_label(c["values"]): c for c in cells}
    out["joint"] = distance(_shares(counts.strata), {k: c["share"] for k, c in label.items()})
    out["joint"]["cells"] = len(cells)
    out["joint"]["count_mismatches"] = sum(counts.strata.get(k, 0) != c["count"] for k, c in label.items())
    out["marginals"] = {}
    for attr_id in stratum_variables(cells):
        planned: dict[str, float] = {}
        for c in cells:
            value = dict(c["values"])[attr_id]
            planned[value] = planned.get(value, 0.0) + c["share"]
        out["marginals"][attr_id] = distance(_shares(counts.marginals.get(attr_id, {})), planned)
    if scope.preset_tables:
        out["preset_fit"] = {}
        for attributes, shares, citation in scope.preset_tables:
            fit = {**distance(_shares(counts.tables.get(table_name(attributes), {})), shares), "citation": citation}
            out["preset_fit"][table_name(attributes)] = fit
    used = [counts.leaves.get(a, 0) for a in scope.leaf_ids]
    out["leaf_coverage"] = sum(c > 0 for c in used) / len(used) if used else 0.0
    out["leaf_entropy"] = normalised_entropy(used)
    out["attributes_per_persona"] = {
        "mean": counts.per_persona_sum / counts.personas if counts.personas else 0.0,
        "min": counts.per_persona_min or 0,
        "max": counts.per_persona_max or 0,
    }
    by_root: dict[str, int] = {}
    for attr_id, count in counts.leaves.items():
        root = attr_id.split(".", 1)[0]
        by_root[root] = by_root.get(root, 0) + count
    total = sum(by_root.values())
    out["root_share"] = {r: by_root.get(r, 0) / total if total else 0.0 for r in scope.root_ids}
    return out


@dataclass(frozen=True)
class FactsSql:
    """DuckDB expressions over an `attributes` column: a MAP (skeletons) or a list of {key, value}
    entries (personas)."""

    is_map: bool

    @classmethod
    def of(cls, column_type: str) -> FactsSql:
        return cls(column_type.startswith("MAP"))

    def value(self, attr_id: str) -> str:
        key = sql_string(attr_id)
        return f"attributes[{key}]" if self.is_map else f"list_filter(attributes, lambda e: e.key = {key})[1].value"

    @property
    def size(self) -> str:
        return "cardinality(attributes)" if self.is_map else "len(attributes)"

    @property
    def keys(self) -> str:
        """Each fact's key, one row per fact (a SELECT item)."""
        return "unnest(map_keys(attributes))" if self.is_map else "unnest(attributes).key"


def count_parquet(glob: str | Path, variables: list[str], scope: MetricsScope) -> SampleCounts:
    """The counts of skeleton or persona tables (`attributes` map column) read with DuckDB.

    Two passes over the files, whatever the number of counts: one keeps a narrow table (stratum, the
    few attributes the plan and preset tables need, facts per persona) that every count groups, one
    counts attribute keys. The whole attribute maps are never held (a million personas carry tens of
    millions of facts)."""
    tables = [list(attributes) for attributes, _, _ in scope.preset_tables]
    wanted = list(dict.fromkeys([*variables, *(a for attributes in tables for a in attributes)]))
    column = {attr_id: f"a{i}" for i, attr_id in enumerate(wanted)}
    con = duckdb.connect()
    try:
        con.execute(f"CREATE VIEW raw AS SELECT * FROM {read_parquet_sql(glob)}")
        columns = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE raw)").fetchall())
        # Persona tables carry no open_attributes column and keep facts as {key, value} entries, read
        # as they are: turning a million personas' entries into maps costs several times the counts.
        opened = "open_attributes" if "open_attributes" in columns else "[]::VARCHAR[]"
        facts = FactsSql.of(columns["attributes"])
        picked = "".join(f", {facts.value(attr_id)} AS {column[attr_id]}" for attr_id in wanted)
        con.execute(
            f"CREATE TEMP TABLE narrow AS SELECT stratum{picked}, {facts.size} + len({opened}) AS facts FROM raw"
        )
        personas = con.execute("SELECT count(*) FROM narrow").fetchone()
        counts = SampleCounts(personas=personas[0] if personas else 0)
        counts.strata.update(dict(con.execute("SELECT stratum, count(*) FROM narrow GROUP BY 1").fetchall()))
        for attr_id in variables:
            rows = con.execute(
                f"SELECT {column[attr_id]} AS v, count(*) FROM narrow WHERE v IS NOT NULL GROUP BY 1"
            ).fetchall()
            counts.marginals[attr_id] = Counter(dict(rows))
        for attributes in tables:
            expr = " || '|' || ".join(column[a] for a in attributes)
            rows = con.execute(f"SELECT {expr} AS v, count(*) FROM narrow WHERE v IS NOT NULL GROUP BY 1").fetchall()
            counts.tables[table_name(attributes)] = Counter(dict(rows))
        counts.leaves.update(
            dict(
                con.execute(
                    f"SELECT k, count(*) FROM (SELECT {facts.keys} AS k FROM raw "
                    f"UNION ALL SELECT unnest({opened}) AS k FROM raw) GROUP BY 1"
                ).fetchall()
            )
        )
        stats = con.execute("SELECT sum(facts), min(facts), max(facts) FROM narrow").fetchone()
        total, low, high = stats if stats is not None else (None, None, None)
        counts.per_persona_sum, counts.per_persona_min, counts.per_persona_max = int(total or 0), low, high
        return counts
    finally:
        con.close()


def sampling_metrics(glob: str | Path, cells: list[dict[str, Any]], scope: MetricsScope) -> dict[str, Any]:
    """Metrics of the tables in `glob` against the plan cells."""
    return metrics_from_counts(count_parquet(glob, stratum_variables(cells), scope), cells, scope)


def cells_as_json(cells: Sequence[QuotaCell]) -> list[dict[str, Any]]:
    return [{"values": [list(v) for v in c.values], "share": c.share, "count": c.count} for c in cells]
