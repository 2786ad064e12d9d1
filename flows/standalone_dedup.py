"""`populace dedup`: deduplicate any JSONL or Parquet corpus, outside a build."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.parquet as pq

from corpus.run_folder import write_bytes_atomically, write_table_atomically
from dedup.detect import DedupItems, find_duplicates
from dedup.embedders import create_embedder
from dedup.metrics import personahub_duplicate_rates, removed_share
from schemas.config import DedupConfig
from schemas.errors import UserInputError


def field_value(record: dict, path: str, where: str) -> object:
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


def read_records(path: Path) -> list[dict]:
    if not path.is_file():
        raise UserInputError(str(path), "INPUT", "no such file", "pass a .jsonl or .parquet file")
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    records = []
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


def texts_and_ids(records: list[dict], source: Path, text_field: str, id_field: str | None) -> tuple[list, list]:
    texts, ids = [], []
    for number, record in enumerate(records, start=1):
        where = f"{source}:{number}"
        text = field_value(record, text_field, where)
        texts.append(text if isinstance(text, str) else leaf_text(text))
        ids.append(str(field_value(record, id_field, where)) if id_field else str(number - 1))
    if len(set(ids)) != len(ids):
        raise UserInputError(str(source), id_field or "<row>", "ids are not unique", "choose a unique --id-field")
    return texts, ids


def dedup_file(source: Path, text_field: str, id_field: str | None, out: Path, cfg: DedupConfig) -> dict:
    """Write out/clusters.parquet and out/summary.json; return the summary."""
    texts, ids = texts_and_ids(read_records(source), source, text_field, id_field)
    embedder = create_embedder(cfg.embedder) if cfg.semantic else None
    clusters = find_duplicates(
        DedupItems(ids=ids, texts=texts, ranks=[float(i) for i in range(len(ids))]), cfg, embedder
    )
    by_layer: dict[str, int] = {}
    for row in clusters.to_pylist():
        if not row["kept"]:
            by_layer[row["layer"]] = by_layer.get(row["layer"], 0) + 1
    summary = {
        "input": str(source),
        "records": len(ids),
        "removed": sum(by_layer.values()),
        "removed_share": round(removed_share(clusters), 4),
        "removed_by_layer": by_layer,
        "personahub_rates": {k: round(v, 4) for k, v in personahub_duplicate_rates(texts, embedder).items()},
        "config": cfg.model_dump(mode="json"),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_table_atomically(clusters.rename_columns(["id", *clusters.column_names[1:]]), out / "clusters.parquet")
    write_bytes_atomically(orjson.dumps(summary, option=orjson.OPT_INDENT_2), out / "summary.json")
    return summary
