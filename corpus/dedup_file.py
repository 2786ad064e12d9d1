"""`populace dedup`: deduplicate any JSONL or Parquet corpus, outside a build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from corpus.record_files import field_value, leaf_text, read_records
from dedup.detect import DedupItems, find_duplicates
from dedup.embedders import create_embedder
from dedup.metrics import personahub_duplicate_rates, removed_share
from foundation.atomic_files import write_bytes_atomically, write_table_atomically
from schemas.config import DedupConfig
from schemas.errors import UserInputError


def file_dedup_config(preset: str, semantic: bool) -> DedupConfig:
    """The dedup settings of `populace dedup`: a named preset, with or without the embedding layer."""
    try:
        return DedupConfig.model_validate({"preset": preset, "semantic": semantic, "facts": False})
    except ValidationError as exc:
        raise UserInputError("--preset", "preset", f"unknown preset '{preset}'", "use populace or personahub") from exc


def texts_and_ids(
    records: list[dict[str, Any]], source: Path, text_field: str, id_field: str | None
) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    ids: list[str] = []
    for number, record in enumerate(records, start=1):
        where = f"{source}:{number}"
        text = field_value(record, text_field, where)
        texts.append(text if isinstance(text, str) else leaf_text(text))
        ids.append(str(field_value(record, id_field, where)) if id_field else str(number - 1))
    if len(set(ids)) != len(ids):
        raise UserInputError(str(source), id_field or "<row>", "ids are not unique", "choose a unique --id-field")
    return texts, ids


def dedup_file(source: Path, text_field: str, id_field: str | None, out: Path, cfg: DedupConfig) -> dict[str, Any]:
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
