"""Validate a batch of LLM outputs against their skeletons; say what to fix when they fail."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from schemas.errors import PopulaceError
from schemas.records import Proposal, ProseProposal, Skeleton
from schemas.tables import VERDICTS
from taxonomy.model import AGE_ID, GENDER_ID, OCCUPATION_ID, REGION_ID, STATE_ID, Attribute, Taxonomy
from taxonomy.names import known_first_names
from taxonomy.opening import write_opening
from taxonomy.sampling import condition_holds
from taxonomy.skeleton_table import skeleton_rows_of, skeletons_of_table
from validators.fidelity import (
    find_age_contradiction,
    find_gender_contradiction,
    find_name_contradiction,
    find_occupation_contradiction,
    find_place_contradiction,
    find_trait_contradiction,
    find_unreflected_facts,
)
from validators.rule_pack import Rule, evaluate_rules, field_message, load_rule_pack


@dataclass(frozen=True)
class Outcome:
    """One record's verdict: passed means no error-severity check failed."""

    persona_id: str
    proposal: Proposal | None
    failed: list[str] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.proposal is not None and not self.failed


def find_inapplicable_facts(
    attributes: dict[str, str], taxonomy: Taxonomy, conditional: dict[str, Attribute] | None = None
) -> str | None:
    """A fact present although the taxonomy's applicable_when says it cannot apply.

    `conditional`: the taxonomy's attributes that have conditions (conditional_attributes), when
    the caller checks many skeletons."""
    conditional = conditional_attributes(taxonomy) if conditional is None else conditional
    for attr_id in attributes:
        attr = conditional.get(attr_id)
        if attr and not all(condition_holds(c, attributes) for c in attr.applicable_when):
            return f"{attr.label} does not apply to this person; leave it out."
    return None


def conditional_attributes(taxonomy: Taxonomy) -> dict[str, Attribute]:
    """The attributes that apply only under conditions: the only ones a fact can break."""
    return {attr_id: attr for attr_id, attr in taxonomy.attributes().items() if attr.applicable_when}


def parse_proposal(text: str, skeleton: Skeleton) -> tuple[Proposal | None, str | None]:
    """The persona's prose from the raw LLM text (code's opening + the continuation), or what is wrong with it."""
    try:
        prose = ProseProposal.model_validate(orjson.loads(text))
    except orjson.JSONDecodeError as exc:
        return None, f"The output is not valid JSON ({exc}); return one complete JSON object."
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'object'}: {e['msg']}" for e in exc.errors())
        return None, field_message(("narrative",), f"The JSON does not match the schema: {problems}.")
    return compose_proposal(skeleton, prose.narrative), None


def compose_proposal(skeleton: Skeleton, continuation: str) -> Proposal:
    """The sampled name, and a narrative that opens with the facts (written by code) and goes on in the LLM's words."""
    if not skeleton.name:
        raise PopulaceError(
            f"slot {skeleton.slot} has no sampled name: its skeleton shard was written by an older "
            "populace; build into a new run folder"
        )
    return Proposal(
        name=skeleton.name, narrative=f"{write_opening(skeleton.name, skeleton.attributes)} {continuation.strip()}"
    )


def attribute_columns(taxonomy: Taxonomy) -> dict[str, tuple[str, pa.DataType]]:
    """attribute id -> (rule column name, Arrow type).

    The column is the id's last part (age, occupation, ...) when no other attribute ends the
    same way, otherwise the whole path with '__' for '.' (health__mental__anxiety)."""
    attributes = taxonomy.attributes().values()
    last_parts = Counter(attr.id.rsplit(".", 1)[-1] for attr in attributes)
    columns = {}
    for attr in attributes:
        name = attr.id.rsplit(".", 1)[-1]
        if last_parts[name] > 1:
            name = attr.id.replace(".", "__")
        columns[attr.id] = (name, pa.float64() if attr.kind == "numeric" else pa.string())
    return columns


def referenced_columns(rules: list[Rule]) -> set[str]:
    """The words a rule pack's predicates and messages use: a superset of the columns they read."""
    return {word for rule in rules for word in re.findall(r"\w+", f"{rule.when} {rule.message}")}


def build_rule_table(
    parsed: Sequence[tuple[Skeleton, Proposal | None]], taxonomy: Taxonomy, wanted: set[str] | None = None
) -> pa.Table:
    """One row per record for the rule packs; without a proposal, name and narrative are NULL.

    `wanted` limits the attribute columns to those the rules can mention (a taxonomy has hundreds)."""
    columns = {
        attr_id: spec for attr_id, spec in attribute_columns(taxonomy).items() if wanted is None or spec[0] in wanted
    }
    data: dict[str, pa.Array] = {
        "persona_id": pa.array([s.persona_id for s, _ in parsed], type=pa.string()),
        "name": pa.array([p.name if p else None for _, p in parsed], type=pa.string()),
        "narrative": pa.array([p.narrative if p else None for _, p in parsed], type=pa.string()),
    }
    for attr_id, (name, dtype) in columns.items():
        values: list[str | None] | list[float | None] = [s.attributes.get(attr_id) for s, _ in parsed]
        if dtype == pa.float64():
            values = [float(v) if v is not None else None for v in values]
        data[name] = pa.array(values, type=dtype)
    return pa.table(data)


class VerdictColumns:
    """Verdict rows (one per slot and check) gathered as columns: a shard has ~40 per slot, and a
    dict per row cost a quarter of validation's time."""

    def __init__(self, round_no: int) -> None:
        self.round_no = round_no
        self.persona_id: list[str] = []
        self.check: list[str] = []
        self.severity: list[str] = []
        self.message: list[str | None] = []

    def add(self, pid: str, check: str, severity: str, message: str | None) -> None:
        self.persona_id.append(pid)
        self.check.append(check)
        self.severity.append(severity)
        self.message.append(message)

    def extend(self, pid: str, checks: list[str], severities: Sequence[str], messages: list[str | None]) -> None:
        """One slot's rows for several checks at once."""
        self.persona_id += [pid] * len(checks)
        self.check += checks
        self.severity.extend(severities)
        self.message += messages

    def table(self) -> pa.Table:
        message = pa.array(self.message, type=pa.string())
        return pa.table(
            {
                "persona_id": pa.array(self.persona_id, type=pa.string()),
                "round": pa.array(np.full(len(self.persona_id), self.round_no, dtype=np.int64)),
                "check": pa.array(self.check, type=pa.string()),
                "severity": pa.array(self.severity, type=pa.string()),
                "passed": message.is_null(),
                "message": pc.fill_null(message, ""),
            },
            schema=VERDICTS,
        )


def validate_batch(
    items: list[tuple[Skeleton, str]],
    taxonomy: Taxonomy,
    rules: list[Rule],
    round_no: int,
    backend_errors: dict[str, str] | None = None,
) -> tuple[list[Outcome], pa.Table]:
    """Check (skeleton, raw LLM text) pairs; return outcomes and the verdicts (VERDICTS): one row per
    check, passed or not.

    A slot whose backend call failed gets a failed `backend` check instead of the others.
    """
    backend_errors = backend_errors or {}
    verdicts = VerdictColumns(round_no)
    failed: dict[str, list[tuple[str, str, str]]] = {s.persona_id: [] for s, _ in items}
    parsed: list[tuple[Skeleton, Proposal]] = []
    proposals: dict[str, Proposal] = {}

    def record(pid: str, check: str, severity: str, message: str | None, fields: tuple[str, ...] = ()) -> None:
        message = field_message(fields, message)
        verdicts.add(pid, check, severity, message)
        if message is not None:
            failed[pid].append((check, severity, message))

    occupation_attr = taxonomy.attributes().get(OCCUPATION_ID)
    known_occupations = frozenset(occupation_attr.values) if occupation_attr else frozenset()
    conditional = conditional_attributes(taxonomy)
    for skeleton, text in items:
        if skeleton.persona_id in backend_errors:
            record(
                skeleton.persona_id,
                "backend",
                "error",
                f"The model call failed ({backend_errors[skeleton.persona_id]}); answer again.",
            )
            continue
        record(
            skeleton.persona_id,
            "taxonomy:applicable_when",
            "error",
            find_inapplicable_facts(skeleton.attributes, taxonomy, conditional),
        )
        proposal, problem = parse_proposal(text, skeleton)
        record(skeleton.persona_id, "schema", "error", problem)
        if proposal is None:
            continue
        parsed.append((skeleton, proposal))
        proposals[skeleton.persona_id] = proposal
        prose = proposal.narrative
        facts = skeleton.attributes
        continuation = prose.removeprefix(write_opening(skeleton.name, facts)).strip()
        for check, severity, message in (
            ("fidelity:age", "error", find_age_contradiction(prose, facts.get(AGE_ID), skeleton.name.split(" ")[0])),
            ("fidelity:name", "error", find_name_contradiction(continuation, skeleton.name, known_first_names())),
            (
                "fidelity:occupation",
                "error",
                find_occupation_contradiction(prose, facts.get(OCCUPATION_ID), known_occupations),
            ),
            ("fidelity:place", "error", find_place_contradiction(prose, facts.get(REGION_ID), facts.get(STATE_ID))),
            ("fidelity:gender", "error", find_gender_contradiction(proposal.narrative, facts.get(GENDER_ID))),
            ("fidelity:traits", "error", find_trait_contradiction(prose, facts)),
            (
                "fidelity:reflects",
                "error",
                find_unreflected_facts(proposal.narrative, facts.get(AGE_ID), facts.get(OCCUPATION_ID)),
            ),
        ):
            record(skeleton.persona_id, check, severity, message, ("narrative",))

    if parsed:
        # A rule pack has dozens of rules and few violations: rows go in a persona at a time.
        index_of = {rule.id: i for i, rule in enumerate(rules)}
        violated: dict[str, dict[int, str]] = {}
        for pid, rule, msg in evaluate_rules(build_rule_table(parsed, taxonomy, referenced_columns(rules)), rules):
            violated.setdefault(pid, {})[index_of[rule.id]] = msg
        checks = [f"rule:{rule.id}" for rule in rules]
        severities = [rule.severity for rule in rules]
        concerns = [rule.concerns() for rule in rules]
        for skeleton, _ in parsed:
            pid = skeleton.persona_id
            messages: list[str | None] = [None] * len(rules)
            for i, msg in sorted(violated.get(pid, {}).items()):
                messages[i] = message = field_message(concerns[i], msg)
                failed[pid].append((checks[i], severities[i], message or ""))
            verdicts.extend(pid, checks, severities, messages)

    outcomes = []
    for skeleton, _ in items:
        problems = failed[skeleton.persona_id]
        outcomes.append(
            Outcome(
                persona_id=skeleton.persona_id,
                proposal=proposals.get(skeleton.persona_id),
                failed=[c for c, sev, _ in problems if sev == "error"],
                feedback=[m for _, sev, m in problems if sev == "error"],
                warnings=[c for c, sev, _ in problems if sev == "warning"],
            )
        )
    return outcomes, verdicts.table()


def validate_shard_table(skeletons: pa.Table, proposals: pa.Table, taxonomy: Taxonomy, round_no: int) -> pa.Table:
    """A shard's verdicts for one round: one row per (slot proposed in that round, check)."""
    pids = proposals.column("persona_id").to_pylist()
    outputs = dict(zip(pids, proposals.column("raw_output").to_pylist(), strict=True))
    errors = {pid: e for pid, e in zip(pids, proposals.column("error").to_pylist(), strict=True) if e}
    if len(pids) < skeletons.num_rows:  # a revise round: only the slots it proposed again
        skeletons = skeleton_rows_of(skeletons, pa.array(pids, type=pa.string()))
    items = [(s, outputs[s.persona_id] or "") for s in skeletons_of_table(skeletons)]
    _, verdicts = validate_batch(items, taxonomy, load_rule_pack(), round_no, errors)
    return verdicts
