"""The mining config: how `populace mine` turns conversations into taxonomy attributes."""

from __future__ import annotations

from pydantic import Field

from schemas.config import BackendConfig, EmbedderConfig, StrictModel

# Bump when the merge rule or its thresholds change meaning, so mined taxonomies say which rule made them.
MERGE_RULE_VERSION = "merge-v1"


class MiningConfig(StrictModel):
    """Sampling of revealing snippets, LLM extraction, and the numeric merge and support rules."""

    seed: int = Field(default=0, ge=0, description="Seeds the snippet sample and the LLM decoding.")
    max_snippets: int = Field(
        default=200,
        ge=1,
        le=1_000_000,
        description="Revealing user sentences sent to the LLM (a deterministic sample when more are found).",
    )
    max_snippets_per_conversation: int = Field(default=3, ge=1, le=100)
    max_candidates_per_snippet: int = Field(default=3, ge=1, le=10)
    min_snippet_chars: int = Field(default=12, ge=1)
    max_snippet_chars: int = Field(default=400, ge=20, le=4000)
    merge_threshold: float = Field(
        default=0.80,
        gt=0,
        le=1,
        description="Cosine at or above which a candidate is the same attribute as a taxonomy leaf or another "
        "candidate (FAISS inner product on unit vectors).",
    )
    attach_threshold: float = Field(
        default=0.45,
        gt=0,
        le=1,
        description="Cosine at or above which a new attribute joins an existing category; below it the "
        "attribute starts or joins a proposed new subtree.",
    )
    min_support: int = Field(
        default=2,
        ge=1,
        description="Distinct conversations an attribute needs before it is added (values need as many).",
    )
    merge_rule_version: str = Field(default=MERGE_RULE_VERSION, description="Recorded in the diff report.")
    backend: BackendConfig = Field(
        default_factory=lambda: BackendConfig(temperature=0.0, max_tokens=160, repeat_penalty=1.1),
    )
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
