"""LLM extraction of attribute candidates from revealing sentences, under a JSON schema."""

from __future__ import annotations

from typing import Any

import orjson

from schemas.config import BackendConfig
from taxonomy.mining.candidates import KINDS, Candidate, candidate_from
from taxonomy.mining.revealing import Snippet
from taxonomy.model import Taxonomy
from workers.backend import GenerationRequest, GenerationResult
from workers.prompts import render_extraction_messages

OTHER_CATEGORY = "other"


def extraction_json_schema(category_ids: list[str], max_items: int) -> dict[str, Any]:
    """The output shape: a short list of {category, attribute, kind, value}; category from the taxonomy's roots."""
    item = {
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": [*category_ids, OTHER_CATEGORY]},
            "attribute": {"type": "string", "minLength": 2, "maxLength": 48},
            "kind": {"type": "string", "enum": list(KINDS)},
            "value": {"type": "string", "maxLength": 48},
        },
        "required": ["category", "attribute", "kind", "value"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"attributes": {"type": "array", "items": item, "maxItems": max_items}},
        "required": ["attributes"],
        "additionalProperties": False,
    }


def build_extraction_requests(
    snippets: list[Snippet], taxonomy: Taxonomy, cfg: BackendConfig, seed: int, max_items: int
) -> list[GenerationRequest]:
    categories = [(root.id, root.label) for root in taxonomy.categories]
    schema = extraction_json_schema([c for c, _ in categories], max_items)
    return [
        GenerationRequest(
            request_id=f"snippet-{i:07d}",
            messages=render_extraction_messages(snippet.text, categories),
            json_schema=schema,
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            repeat_penalty=cfg.repeat_penalty,
            seed=(seed * 1_000_003 + i) % (2**31 - 1),
        )
        for i, snippet in enumerate(snippets)
    ]


def parse_extraction(
    result: GenerationResult, snippet: Snippet, category_ids: set[str]
) -> tuple[list[Candidate], int, str | None]:
    """(candidates, proposed items dropped by normalisation, failure reason or None)."""
    if result.error:
        return [], 0, "backend_error"
    try:
        payload = orjson.loads(result.text)
    except orjson.JSONDecodeError:
        return [], 0, "unparseable" if result.finish_reason != "length" else "truncated"
    items = payload.get("attributes") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        return [], 0, "wrong_shape"
    proposed = [
        candidate_from(snippet.conversation, item, category_ids, snippet.text)
        for item in items
        if isinstance(item, dict)
    ]
    kept = [c for c in proposed if c]
    return kept, len(items) - len(kept), None
