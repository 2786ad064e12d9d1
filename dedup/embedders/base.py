"""The Embedder protocol: texts in, L2-normalised float32 rows out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An (n, dimension) float32 array whose rows have unit length (zero rows stay zero)."""
        ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Unit-length float32 rows, so inner product is cosine similarity (FAISS IndexFlatIP)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: np.ndarray = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    return unit


def in_batches(texts: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(texts), size):
        yield list(texts[start : start + size])
