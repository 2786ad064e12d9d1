"""Constraints at sampling time: facts-scope rules (error severity) force a redraw of the slot."""

from __future__ import annotations

from collections.abc import Callable

from schemas.records import Skeleton
from taxonomy.model import Taxonomy
from validators.engine import build_rule_table
from validators.rule_pack import Rule, evaluate_rules

MAX_REDRAWS = 50


def facts_constraints(rules: list[Rule]) -> list[Rule]:
    return [r for r in rules if r.scope == "facts" and r.severity == "error"]


def enforce_constraints(
    skeletons: list[Skeleton], redraw: Callable[[Skeleton, int], Skeleton], taxonomy: Taxonomy,
    constraints: list[Rule],
) -> tuple[list[Skeleton], dict[str, list[str]]]:
    """Redraw each violating skeleton (attempt 1, 2, ...) until no constraint fires.

    Returns the skeletons and, per persona id, the rule ids that forced each redraw. A slot
    still violating after MAX_REDRAWS keeps its last draw; validation then rejects it by name.
    """
    current = {s.persona_id: s for s in skeletons}
    redraws: dict[str, list[str]] = {s.persona_id: [] for s in skeletons}
    pending = list(current.values())
    for attempt in range(1, MAX_REDRAWS + 1):
        if not pending or not constraints:
            break
        violated: dict[str, str] = {}
        for pid, rule, _ in evaluate_rules(build_rule_table([(s, None) for s in pending], taxonomy), constraints):
            violated.setdefault(pid, rule.id)
        pending = []
        for pid, rule_id in violated.items():
            redraws[pid].append(rule_id)
            current[pid] = redraw(current[pid], attempt)
            pending.append(current[pid])
    return [current[s.persona_id] for s in skeletons], redraws
