"""pandera checks run on personas and rejects before a shard is committed."""

from __future__ import annotations

import pandera.pandas as pa_check
import pyarrow as pa

from schemas.errors import PopulaceError

_nonempty = pa_check.Check.str_length(min_value=1)

PERSONAS_CHECK = pa_check.DataFrameSchema(
    {
        "persona_id": pa_check.Column(str, _nonempty, unique=True),
        "slot": pa_check.Column(int, pa_check.Check.ge(0), unique=True),
        "stratum": pa_check.Column(str, _nonempty),
        "name": pa_check.Column(str, pa_check.Check.str_length(min_value=3)),
        "narrative": pa_check.Column(str, pa_check.Check.str_length(min_value=1)),
        "run_id": pa_check.Column(str, _nonempty),
        "taxonomy_hash": pa_check.Column(str, pa_check.Check.str_length(64, 64)),
        "model": pa_check.Column(str, _nonempty),
        "prompt_template_hash": pa_check.Column(str, _nonempty),
        "verdict_summary": pa_check.Column(str, _nonempty),
        "rounds": pa_check.Column(int, pa_check.Check.ge(1)),
        "duplicate_cluster_id": pa_check.Column(str, _nonempty),
    },
    strict=False,
    coerce=False,
)

REJECTS_CHECK = pa_check.DataFrameSchema(
    {
        "persona_id": pa_check.Column(str, _nonempty, unique=True),
        "slot": pa_check.Column(int, pa_check.Check.ge(0), unique=True),
        "stage": pa_check.Column(str, pa_check.Check.isin(["propose", "validate", "judge", "dedup", "quota"])),
        "reason": pa_check.Column(str, _nonempty),
        "detail": pa_check.Column(str, nullable=True),
        "round": pa_check.Column(int, pa_check.Check.ge(0)),
        "run_id": pa_check.Column(str, _nonempty),
    },
    strict=False,
    coerce=False,
)


def check_table(table: pa.Table, schema: pa_check.DataFrameSchema, what: str) -> None:
    """Raise if the table breaks its contract; nothing invalid reaches the corpus."""
    frame = table.drop_columns([c for c in table.column_names if c not in schema.columns]).to_pandas()
    try:
        schema.validate(frame, lazy=True)
    except (pa_check.errors.SchemaErrors, pa_check.errors.SchemaError) as exc:
        raise PopulaceError(f"{what} failed its table contract:\n{exc}") from exc
