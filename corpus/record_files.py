"""Records from any JSONL or Parquet corpus (ours or a reference): reading, and reaching a field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

from schemas.errors import UserInputError


def field_value(record: dict[str, Any], path: str, where: str) -> object:
    """record['a']['b'] for path 'a.b' (a key containing dots is tried whole first)."""
    if path in record:
        return record[path]
    value: object = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise UserInputError(
                where,
                path,
                "field not found",
                "pass --text-field/--id-field naming a field of every record (dots reach into nested objects)",
            )
        value = value[part]
    return value


def leaf_text(value: object) -> str:
    """A structured record as the text of its values: keys are shared by every record of a
    schema and would make any two records look alike."""
    if isinstance(value, dict):
        return " ".join(leaf_text(v) for v in value.values())
    if isinstance(value, list):
        return " ".join(leaf_text(v) for v in value)
    return "" if value is None else str(value)


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise UserInputError(str(path), "INPUT", "no such file", "pass a .jsonl or .parquet file")
    if path.suffix == ".parquet":
        rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
        return rows
    records: list[dict[str, Any]] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise UserInputError(
                    f"{path}:{number}", "<line>", f"not JSON ({exc})", "write one JSON object per line"
                ) from exc
    return records
