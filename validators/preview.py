"""Preview: a few personas straight from the backend, validated, with nothing written."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.config import RunConfig
from schemas.records import Skeleton
from taxonomy.loader import load_taxonomy
from taxonomy.quotas import plan_slots
from taxonomy.sampling import to_skeletons
from validators.constraints import sample_constrained
from validators.engine import Outcome, validate_batch
from validators.rule_pack import load_rule_pack
from workers.factory import create_backend
from workers.proposer import build_requests


@dataclass(frozen=True)
class PreviewItem:
    skeleton: Skeleton
    raw_output: str
    outcome: Outcome


def preview_personas(cfg: RunConfig, n: int) -> list[PreviewItem]:
    """The first n slots of the plan, proposed once in this process (no Ray, no Prefect)."""
    taxonomy = load_taxonomy(cfg.taxonomy)
    count = min(n, cfg.population)
    slot_cells = plan_slots(cfg, taxonomy).slot_cells[:count]
    batch, _ = sample_constrained(taxonomy, slot_cells, cfg.seed, range(count), cfg.deep_attributes)
    skeletons = to_skeletons(batch, taxonomy)
    backend = create_backend(cfg.backend)
    results = backend.generate(build_requests(skeletons, taxonomy, cfg.backend, cfg.seed, 0))
    errors = {r.request_id: r.error for r in results if r.error}
    outcomes, _ = validate_batch(
        [(s, r.text) for s, r in zip(skeletons, results, strict=True)], taxonomy, load_rule_pack(), 0, errors
    )
    return [PreviewItem(s, r.text, o) for s, r, o in zip(skeletons, results, outcomes, strict=True)]
