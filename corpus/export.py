"""`populace export`: personas as JSON Lines or CSV (facts as a JSON object), written atomically."""

from __future__ import annotations

from pathlib import Path

import duckdb

from corpus.run_folder import atomic_path
from schemas.errors import UserInputError
from schemas.tables import PERSONAS_AS_MAP

FORMATS = {"jsonl": "FORMAT JSON", "csv": "FORMAT CSV, HEADER"}


def export_personas(run_dir: Path, fmt: str, out: Path) -> int:
    """Write every persona of the run to `out`; return how many."""
    if fmt not in FORMATS:
        raise UserInputError("--format", "--format", f"unknown format '{fmt}'", f"use one of {sorted(FORMATS)}")
    shards = run_dir / "personas"
    if not any(shards.glob("part-*.parquet")):
        raise UserInputError(
            str(run_dir),
            "personas/",
            "no personas in this folder",
            "pass a run folder that populace build has finished",
        )
    source = "(" + PERSONAS_AS_MAP.format(files="'" + str(shards / "part-*.parquet").replace("'", "''") + "'") + ")"
    # CSV has no nested values: the facts travel as one JSON object column.
    facts = "to_json(attributes)" if fmt == "csv" else "attributes"
    with duckdb.connect() as con, atomic_path(out) as tmp:
        con.execute(
            f"COPY (SELECT * REPLACE ({facts} AS attributes) FROM {source} ORDER BY slot) "
            f"TO '{str(tmp).replace(chr(39), chr(39) * 2)}' ({FORMATS[fmt]})"
        )
        return con.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
