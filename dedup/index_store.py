"""Persisted dedup features of a finished corpus, so later runs deduplicate against it cheaply."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from dedup.detect import DedupItems
from dedup.lazy_rows import rows_at
from schemas.config import DedupConfig


def feature_key(cfg: DedupConfig, embedder_name: str | None) -> dict[str, Any]:
    """What the stored features depend on; features are reused only when this matches."""
    return {"num_perm": cfg.num_perm, "shingles": cfg.shingles.model_dump(), "embedder": embedder_name}


ROWS_PER_WRITE = 65_536


def write_matrix(path: Path, rows: np.ndarray | Sequence[Any]) -> None:
    """An .npy file of the (n, width) rows, written block by block (a lazy column is never held whole)."""
    with path.open("wb") as out:
        for start in range(0, len(rows), ROWS_PER_WRITE):
            block = np.ascontiguousarray(rows_at(rows, np.arange(start, min(start + ROWS_PER_WRITE, len(rows)))))
            if start == 0:
                header = {"descr": np.lib.format.dtype_to_descr(block.dtype), "fortran_order": False}
                np.lib.format.write_array_header_2_0(out, {**header, "shape": (len(rows), block.shape[1])})
            out.write(block.tobytes())


def save_index(folder: Path, items: DedupItems, key: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"persona_id": items.ids}), folder / "ids.parquet")
    for name in ("text_signatures", "fact_signatures", "vectors"):
        value = getattr(items, name)
        path = folder / f"{name}.npy"
        path.unlink(missing_ok=True)  # from an earlier, interrupted save
        if value is not None and len(value):
            write_matrix(path, value)
    # Written last: an index without meta.json is ignored, so a crash mid-save is harmless.
    (folder / "meta.json").write_bytes(orjson.dumps({**key, "count": len(items)}))


def load_features(folder: Path, items: DedupItems, key: dict[str, Any]) -> DedupItems:
    """Attach stored signatures/vectors to items when they were made the same way for the same ids."""
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return items
    meta = orjson.loads(meta_path.read_bytes())
    stored_ids = pq.read_table(folder / "ids.parquet").column("persona_id").to_pylist()
    if stored_ids != [i.split(":", 1)[-1] for i in items.ids]:
        return items
    for name in ("text_signatures", "fact_signatures", "vectors"):
        path = folder / f"{name}.npy"
        wanted = meta.get("num_perm") == key["num_perm"] and meta.get("shingles") == key["shingles"]
        if name == "vectors":
            wanted = meta.get("embedder") == key["embedder"]
        if name == "fact_signatures":
            wanted = meta.get("num_perm") == key["num_perm"]
        if wanted and path.is_file():
            setattr(items, name, np.load(path))
    return items
