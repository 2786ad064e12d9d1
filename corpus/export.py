"""`populace export`: personas as JSON Lines or CSV (facts as a JSON object), written atomically."""

from __future__ import annotations

from pathlib import Path

import duckdb

from corpus.run_folder import PERSONAS, RunFolder, sql_string
from foundation.atomic_files import atomic_path
from schemas.errors import UserInputError
from schemas.tables import PERSONAS_AS_MAP

FORMATS = {"jsonl": "FORMAT JSON", "csv": "FORMAT CSV, HEADER"}


def export_personas(run: RunFolder, fmt: str, out: Path) -> int:
    """Write every persona of the run to `out`; return how many."""
    if fmt not in FORMATS:
        raise UserInputError("--format", "--format", f"unknown format '{fmt}'", f"use one of {sorted(FORMATS)}")
    if not run.has_files(PERSONAS):
        raise UserInputError(
            str(run.root),
            "personas/",
            "no personas in this folder",
            "pass a run folder that populace build has finished",
        )
    source = "(" + PERSONAS_AS_MAP.format(files=run.glob_sql(PERSONAS)) + ")"
    # CSV has no nested values: the facts travel as one JSON object column.
    facts = "to_json(attributes)" if fmt == "csv" else "attributes"
    with duckdb.connect() as con, atomic_path(out) as tmp:
        con.execute(
            f"COPY (SELECT * REPLACE ({facts} AS attributes) FROM {source} ORDER BY slot) "
            f"TO {sql_string(tmp)} ({FORMATS[fmt]})"
        )
        row = con.execute(f"SELECT count(*) FROM {source}").fetchone()
        return int(row[0]) if row else 0
