"""Build the embedder a config asks for."""

from __future__ import annotations

from dedup.embedders.base import Embedder
from schemas.config import EmbedderConfig


def create_embedder(cfg: EmbedderConfig) -> Embedder:
    if cfg.kind == "static":
        from dedup.embedders.static import StaticEmbedder

        return StaticEmbedder(cfg.model, batch_size=cfg.batch_size)
    if cfg.kind == "transformer":
        from dedup.embedders.transformer import TransformerEmbedder

        return TransformerEmbedder(cfg.model, batch_size=cfg.batch_size)
    from dedup.embedders.endpoint import EndpointEmbedder

    return EndpointEmbedder(cfg.base_url, cfg.model, cfg.api_key_env, cfg.batch_size, cfg.timeout_s)
