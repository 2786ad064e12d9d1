"""Build the embedder a config asks for."""

from __future__ import annotations

from pathlib import Path

from dedup.embedders.base import Embedder
from schemas.config import EmbedderConfig
from schemas.errors import UserInputError


def create_embedder(cfg: EmbedderConfig) -> Embedder:
    if cfg.kind == "static":
        from dedup.embedders.static import StaticEmbedder

        return StaticEmbedder(cfg.model, batch_size=cfg.batch_size)
    if cfg.kind == "transformer":
        from dedup.embedders.transformer import TransformerEmbedder

        return TransformerEmbedder(cfg.model, batch_size=cfg.batch_size)
    from dedup.embedders.endpoint import EndpointEmbedder

    if cfg.base_url is None:  # EmbedderConfig's validator already refuses this
        raise UserInputError(
            "run config", "embedder.base_url", "an endpoint embedder needs base_url", "e.g. http://127.0.0.1:8000/v1"
        )
    return EndpointEmbedder(cfg.base_url, cfg.model, cfg.api_key_env, cfg.batch_size, cfg.timeout_s)


def embedder_name(cfg: EmbedderConfig) -> str:
    """The name an embedder of this config gives (stored features are keyed by it), without loading
    a model or calling an endpoint where the name does not depend on them (static, endpoint)."""
    if cfg.kind == "static":
        from dedup.embedders.static import static_name

        return static_name(cfg.model)
    if cfg.kind == "endpoint":
        from dedup.embedders.endpoint import endpoint_name

        return endpoint_name(cfg.model)
    return create_embedder(cfg).name  # a transformer's name says the device it loaded on


def check_embedder_files(cfg: EmbedderConfig, where: str, field: str) -> None:
    """The model files an embedder would load are there (and, for static, match their checksums).

    Cheap (no model is loaded), so a build or a mining run fails on a wrong folder before it writes
    anything; an endpoint is reached only when used (`populace doctor` tries it).
    """
    if cfg.kind == "static":
        from dedup.embedders.static import DEFAULT_MODEL_DIR, verify_model_files

        folder = Path(cfg.model) if cfg.model else DEFAULT_MODEL_DIR
        if not (folder / "SHA256SUMS").is_file():
            raise UserInputError(
                where,
                f"{field}.model",
                f"{folder} is not a static embedder folder (no SHA256SUMS)",
                "point it at a folder scripts/distill_static_model.py wrote, or leave it unset "
                "for the shipped minilm-static-256",
            )
        verify_model_files(folder)
    elif cfg.kind == "transformer" and cfg.model and not Path(cfg.model).is_dir():
        raise UserInputError(
            where,
            f"{field}.model",
            f"no such model folder: {cfg.model}",
            "point it at a sentence-transformers folder, or leave it unset for all-MiniLM-L6-v2",
        )
