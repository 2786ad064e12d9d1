"""How well skeletons follow their plan and cover the taxonomy, computed with DuckDB over Parquet.

- per stratum variable and for the joint cells: max absolute deviation, total variation
  distance (TVD) and KL(produced || plan) of the produced shares against the planned shares;
- preset fit: the same for every preset table (census marginals), stratified on or not;
- leaf coverage (share of taxonomy leaves used at least once) and its normalised entropy;
- attributes per persona (facts plus open text attributes) and the share of facts per root.
"""

from __future__ import annotations

import math
from pathlib import Path

import duckdb

from taxonomy.model import Taxonomy
from taxonomy.presets import PopulationPreset


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


def _shares(rows: list[tuple[str, int]]) -> dict[str, float]:
    total = sum(n for _, n in rows)
    return {key: n / total for key, n in rows} if total else {}


def sampling_metrics(skeleton_glob: str, cells: list[dict], taxonomy: Taxonomy,
                     preset: PopulationPreset | None = None) -> dict:
    """Metrics of the skeletons in `skeleton_glob` against plan cells [{values, share, count}]."""
    con = duckdb.connect()
    try:
        con.execute(f"CREATE VIEW raw AS SELECT * FROM read_parquet('{skeleton_glob}', union_by_name=true)")
        columns = {row[0] for row in con.execute("DESCRIBE raw").fetchall()}
        # Persona tables carry no open_attributes column; skeleton tables do.
        extra = "" if "open_attributes" in columns else ", []::VARCHAR[] AS open_attributes"
        con.execute(f"CREATE VIEW s AS SELECT *{extra} FROM raw")
        n = con.execute("SELECT count(*) FROM s").fetchone()[0]
        out: dict = {"personas": n}
        label = {";".join(f"{a.split('.')[-1]}={v}" for a, v in c["values"]) or "all": c for c in cells}
        produced = _shares(con.execute("SELECT stratum, count(*) FROM s GROUP BY 1").fetchall())
        out["joint"] = distance(produced, {k: c["share"] for k, c in label.items()})
        out["joint"]["cells"] = len(cells)
        exact = dict(con.execute("SELECT stratum, count(*) FROM s GROUP BY 1").fetchall())
        out["joint"]["count_mismatches"] = sum(exact.get(k, 0) != c["count"] for k, c in label.items())
        variables = list(dict.fromkeys(a for c in cells for a, _ in c["values"]))
        out["marginals"] = {}
        for attr_id in variables:
            planned: dict[str, float] = {}
            for c in cells:
                value = dict(c["values"])[attr_id]
                planned[value] = planned.get(value, 0.0) + c["share"]
            rows = con.execute("SELECT attributes[?] AS v, count(*) FROM s WHERE v IS NOT NULL GROUP BY 1",
                               [attr_id]).fetchall()
            out["marginals"][attr_id] = distance(_shares(rows), planned)
        if preset:
            out["preset_fit"] = {}
            for table in preset.marginals:
                expr = " || '|' || ".join(f"attributes['{a}']" for a in table.attributes)
                rows = con.execute(f"SELECT {expr} AS v, count(*) FROM s WHERE v IS NOT NULL GROUP BY 1").fetchall()
                fit = distance(_shares(rows), table.shares)
                fit["citation"] = table.citation
                out["preset_fit"][" x ".join(table.attributes)] = fit
        leaves = taxonomy.attributes()
        used = dict(con.execute(
            "SELECT k, count(*) FROM (SELECT unnest(map_keys(attributes)) AS k FROM s "
            "UNION ALL SELECT unnest(open_attributes) AS k FROM s) GROUP BY 1").fetchall())
        counts = [used.get(a, 0) for a in leaves]
        out["leaf_coverage"] = sum(c > 0 for c in counts) / len(leaves) if leaves else 0.0
        out["leaf_entropy"] = normalised_entropy(counts)
        per_persona = con.execute(
            "SELECT avg(c), min(c), max(c) FROM (SELECT cardinality(attributes) + len(open_attributes) AS c FROM s)"
        ).fetchone()
        out["attributes_per_persona"] = {"mean": per_persona[0] or 0.0, "min": per_persona[1] or 0,
                                         "max": per_persona[2] or 0}
        by_root: dict[str, int] = {}
        for attr_id, count in used.items():
            root = attr_id.split(".", 1)[0]
            by_root[root] = by_root.get(root, 0) + count
        total = sum(by_root.values())
        out["root_share"] = {r.id: by_root.get(r.id, 0) / total if total else 0.0 for r in taxonomy.categories}
        return out
    finally:
        con.close()


def cells_as_json(cells: list) -> list[dict]:
    return [{"values": [list(v) for v in c.values], "share": c.share, "count": c.count} for c in cells]


def skeleton_glob(folder: Path) -> str:
    return str(folder / "skeletons" / "*.parquet")
