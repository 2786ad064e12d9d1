"""Load a taxonomy YAML (a shipped seed or a user file) and check it is usable."""

from __future__ import annotations

import graphlib
import hashlib
import math
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from schemas.errors import UserInputError
from taxonomy.model import Attribute, Taxonomy

SEED_PREFIX = "seed:"


def read_taxonomy_source(ref: str) -> tuple[str, bytes]:
    """Return (display name, bytes) for 'seed:<name>' or a filesystem path."""
    if ref.startswith(SEED_PREFIX):
        name = ref[len(SEED_PREFIX):]
        seed_file = resources.files("taxonomy").joinpath("seed", f"{name}.yaml")
        if not seed_file.is_file():
            shipped = sorted(p.name.removesuffix(".yaml") for p in
                             resources.files("taxonomy").joinpath("seed").iterdir())
            raise UserInputError(ref, "taxonomy", f"no shipped seed taxonomy '{name}'",
                                 f"use one of {', '.join('seed:' + s for s in shipped)}")
        return ref, seed_file.read_bytes()
    path = Path(ref)
    if not path.is_file():
        raise UserInputError(ref, "taxonomy", "no such file", "give a taxonomy YAML path or seed:core")
    return str(path), path.read_bytes()


def load_taxonomy(ref: str) -> Taxonomy:
    where, data = read_taxonomy_source(ref)
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserInputError(where, "<file>", f"not readable YAML ({exc.__class__.__name__})",
                             "save the taxonomy as UTF-8 YAML") from exc
    if not isinstance(raw, dict):
        raise UserInputError(where, "<root>", "is not a mapping", "start with name, version, categories")
    raw["content_hash"] = hashlib.sha256(data).hexdigest()
    try:
        taxonomy = Taxonomy.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise UserInputError(where, field, err["msg"], "see the taxonomy format in taxonomy/model.py") from exc
    check_taxonomy(taxonomy, where)
    return taxonomy


def check_taxonomy(taxonomy: Taxonomy, where: str) -> None:
    """Reject duplicate ids, empty domains, unknown references, bad weights and cycles."""
    seen: dict[str, Attribute] = {}
    for category in taxonomy.categories:
        for attr in category.attributes:
            if attr.id in seen:
                raise UserInputError(where, attr.id, "duplicate attribute id", "give each attribute a unique id")
            if attr.id.split(".")[0] != category.id:
                raise UserInputError(where, attr.id, f"does not start with its category '{category.id}'",
                                     f"name it {category.id}.<slug>")
            seen[attr.id] = attr
    for attr in seen.values():
        _check_domain(attr, where)
        _check_references(attr, seen, where)
    sorter = graphlib.TopologicalSorter({a.id: parents_of(a) for a in seen.values()})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise UserInputError(where, cycle, "attributes depend on each other in a cycle",
                             "remove one depends_on / applicable_when / range_by link") from exc


def parents_of(attr: Attribute) -> set[str]:
    parents = {c.attribute for c in attr.applicable_when}
    if attr.depends_on:
        parents.add(attr.depends_on.attribute)
    if attr.range_by:
        parents.add(attr.range_by.attribute)
    return parents


def sampling_order(taxonomy: Taxonomy) -> list[str]:
    """Attribute ids ordered so that every parent is sampled before its children."""
    graph = {a.id: parents_of(a) for a in taxonomy.attributes().values()}
    return list(graphlib.TopologicalSorter(graph).static_order())


def _check_weights(weights: dict[str, float], where: str, field: str) -> None:
    if not weights:
        raise UserInputError(where, field, "empty value domain", "list at least one value with a weight")
    if any(w < 0 for w in weights.values()):
        raise UserInputError(where, field, "negative weight", "use weights >= 0")
    total = sum(weights.values())
    if not math.isclose(total, 1.0, abs_tol=1e-3):
        raise UserInputError(where, field, f"weights sum to {total:.4g}", "make the weights sum to 1")


def _check_domain(attr: Attribute, where: str) -> None:
    if attr.kind in ("categorical", "ordinal"):
        _check_weights(attr.values, where, f"{attr.id}.values")
        if attr.depends_on:
            for parent_value, weights in attr.depends_on.table.items():
                field = f"{attr.id}.depends_on.table.{parent_value}"
                _check_weights(weights, where, field)
                unknown = set(weights) - set(attr.values)
                if unknown:
                    raise UserInputError(where, field, f"values {sorted(unknown)} are not in the domain",
                                         f"use values from {sorted(attr.values)}")
    elif attr.kind == "numeric":
        if attr.minimum is None or attr.maximum is None or attr.minimum > attr.maximum:
            raise UserInputError(where, attr.id, "numeric attribute needs minimum <= maximum",
                                 "set minimum and maximum")
    elif attr.kind == "text" and not attr.guidance:
        raise UserInputError(where, f"{attr.id}.guidance", "text attribute without guidance",
                             "say in one line what the LLM should write")


def _check_references(attr: Attribute, known: dict[str, Attribute], where: str) -> None:
    for parent in sorted(parents_of(attr)):
        if parent not in known:
            raise UserInputError(where, attr.id, f"refers to unknown attribute '{parent}'",
                                 "fix the id or add that attribute")
    if attr.depends_on:
        parent = known[attr.depends_on.attribute]
        missing = set(parent.values) - set(attr.depends_on.table)
        if missing:
            raise UserInputError(where, f"{attr.id}.depends_on.table",
                                 f"no row for parent values {sorted(missing)}", "add a row for each")
    if attr.range_by:
        parent = known[attr.range_by.attribute]
        missing = set(parent.values) - set(attr.range_by.ranges)
        if missing:
            raise UserInputError(where, f"{attr.id}.range_by.ranges",
                                 f"no range for parent values {sorted(missing)}", "add a range for each")
