"""Static embeddings: a model2vec model distilled from all-MiniLM-L6-v2, numpy only."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dedup.embedders.base import in_batches, normalize_rows
from foundation.resources import package_path
from schemas.errors import UserInputError

DEFAULT_MODEL_DIR = package_path("dedup.embedders", "minilm-static-256")


def static_name(model_dir: str | Path | None) -> str:
    return f"static:{(Path(model_dir) if model_dir else DEFAULT_MODEL_DIR).name}"


def verify_model_files(folder: Path) -> None:
    """Every file listed in SHA256SUMS must be present and match, or the model is refused."""
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        raise UserInputError(
            str(folder),
            "SHA256SUMS",
            "no checksum file beside the weights",
            "use a folder written by scripts/distill_static_model.py",
        )
    for line in sums.read_text().splitlines():
        if not line.strip():
            continue
        expected, name = line.split(maxsplit=1)
        path = folder / name.strip()
        actual = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
        if actual != expected:
            raise UserInputError(
                str(path),
                "sha256",
                f"is {actual[:12]}…, expected {expected[:12]}…",
                "restore the file from git or rerun scripts/distill_static_model.py",
            )


class StaticEmbedder:
    """Token-embedding lookup and mean pooling: thousands of texts per second on one core."""

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 1024) -> None:
        from dedup.embedders.word_tokens import WordCachedStaticModel

        folder = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
        if not folder.is_dir():
            raise UserInputError(
                str(folder),
                "embedder.model",
                "no such model folder",
                "point embedder.model at a model2vec folder, or leave it unset",
            )
        verify_model_files(folder)
        self._model = WordCachedStaticModel.from_pretrained(str(folder))
        self.name = static_name(folder)
        self.dimension = int(self._model.dim)
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = [
            self._model.encode(batch, batch_size=self.batch_size, show_progress_bar=False)
            for batch in in_batches(texts, self.batch_size * 16)
        ]
        return normalize_rows(np.concatenate(parts))
