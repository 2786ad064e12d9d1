"""Ray Data parallelism for the per-text work of dedup on large corpora (signatures, vectors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from dedup.minhash import signatures
from dedup.normalize import shingles
from schemas.config import ShingleConfig

if TYPE_CHECKING:
    import ray.data

RAY_MIN_TEXTS = 200_000  # below this, starting Ray workers costs more than it saves


def _text_dataset(texts: Sequence[str], chunk: int) -> ray.data.Dataset:
    import ray
    import ray.data

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    return ray.data.from_items([{"text": t} for t in texts], override_num_blocks=max(1, len(texts) // chunk))


def _collect(dataset: ray.data.Dataset, column: str) -> np.ndarray:
    return np.vstack([batch[column] for batch in dataset.iter_batches(batch_format="numpy", batch_size=None)])


def signatures_with_ray(
    texts: Sequence[str], shingle_cfg: ShingleConfig, num_perm: int, chunk: int = 10_000
) -> np.ndarray:
    """map_batches over text chunks, one task per CPU, in input order."""
    unit, size = shingle_cfg.unit, shingle_cfg.size

    def batch_signatures(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cfg = ShingleConfig(unit=unit, size=size)
        return {"sig": signatures([shingles(t, cfg) for t in batch["text"]], num_perm)}

    # Ray types fn as taking any batch format; batch_format="numpy" means it only ever gets dicts of arrays.
    dataset = _text_dataset(texts, chunk).map_batches(
        batch_signatures,  # type: ignore[arg-type]
        batch_size=chunk,
        batch_format="numpy",
    )
    return _collect(dataset, "sig")


class _StaticEmbedActor:
    """Loads the static model once per Ray actor (a 15 MB read)."""

    def __init__(self, model_dir: str | None) -> None:
        from dedup.embedders.static import StaticEmbedder

        self.embedder = StaticEmbedder(model_dir)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"vec": self.embedder.embed(list(batch["text"]))}


def static_vectors_with_ray(
    texts: Sequence[str], model_dir: str | None, workers: int, chunk: int = 20_000
) -> np.ndarray:
    import ray.data

    dataset = _text_dataset(texts, chunk).map_batches(
        _StaticEmbedActor,
        fn_constructor_kwargs={"model_dir": model_dir},
        batch_size=chunk,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    return _collect(dataset, "vec")
