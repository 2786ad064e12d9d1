"""MinHash signatures of many texts: chunked to bound memory, Ray Data-parallel when large."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dedup.minhash import signatures
from dedup.normalize import shingles
from schemas.config import ShingleConfig

CHUNK = 10_000
RAY_MIN_TEXTS = 200_000  # below this, starting Ray workers costs more than it saves


def signatures_of_texts(texts: Sequence[str], shingle_cfg: ShingleConfig, num_perm: int) -> np.ndarray:
    """Chunk by chunk, so only one chunk's shingle sets are ever in memory."""
    if len(texts) >= RAY_MIN_TEXTS:
        return signatures_with_ray(texts, shingle_cfg, num_perm)
    parts = [signatures([shingles(t, shingle_cfg) for t in texts[i:i + CHUNK]], num_perm)
             for i in range(0, len(texts), CHUNK)]
    return np.vstack(parts) if parts else np.zeros((0, num_perm), dtype=np.uint32)


def signatures_with_ray(texts: Sequence[str], shingle_cfg: ShingleConfig, num_perm: int) -> np.ndarray:
    """Ray Data map_batches over text chunks, one task per CPU, order preserved."""
    import ray
    import ray.data

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    unit, size = shingle_cfg.unit, shingle_cfg.size

    def batch_signatures(batch: dict) -> dict:
        cfg = ShingleConfig(unit=unit, size=size)
        return {"sig": signatures([shingles(t, cfg) for t in batch["text"]], num_perm)}

    dataset = ray.data.from_items([{"text": t} for t in texts], override_num_blocks=max(1, len(texts) // CHUNK))
    out = dataset.map_batches(batch_signatures, batch_size=CHUNK, batch_format="numpy")
    return np.vstack([batch["sig"] for batch in out.iter_batches(batch_format="numpy", batch_size=None)])
