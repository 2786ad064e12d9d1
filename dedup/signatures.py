"""MinHash signatures of many texts, chunked to bound memory (Ray Data-parallel when large)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dedup.minhash import signatures
from dedup.normalize import shingles
from dedup.parallel import RAY_MIN_TEXTS
from schemas.config import ShingleConfig

CHUNK = 10_000


def signatures_of_texts(texts: Sequence[str], shingle_cfg: ShingleConfig, num_perm: int) -> np.ndarray:
    """Chunk by chunk, so only one chunk's shingle sets are ever in memory."""
    if len(texts) >= RAY_MIN_TEXTS:
        from dedup.parallel import signatures_with_ray

        return signatures_with_ray(texts, shingle_cfg, num_perm, CHUNK)
    parts = [
        signatures([shingles(t, shingle_cfg) for t in texts[i : i + CHUNK]], num_perm)
        for i in range(0, len(texts), CHUNK)
    ]
    return np.vstack(parts) if parts else np.zeros((0, num_perm), dtype=np.uint32)
