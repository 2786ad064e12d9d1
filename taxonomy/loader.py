"""Load a taxonomy YAML (a shipped seed or a user file), check it is usable, and write one back."""

from __future__ import annotations

import graphlib
import hashlib
import math
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from foundation.atomic_files import atomic_path
from foundation.yaml_text import load_yaml
from schemas.errors import UserInputError
from taxonomy.model import Attribute, Node, Taxonomy

SEED_PREFIX = "seed:"
MAX_TAXONOMY_BYTES = 32 * 1024 * 1024


def read_taxonomy_source(ref: str) -> tuple[str, bytes]:
    """Return (display name, bytes) for 'seed:<name>' or a filesystem path."""
    if ref.startswith(SEED_PREFIX):
        name = ref[len(SEED_PREFIX) :]
        seed_file = resources.files("taxonomy").joinpath("seed", f"{name}.yaml")
        if not seed_file.is_file():
            shipped = sorted(
                p.name.removesuffix(".yaml")
                for p in resources.files("taxonomy").joinpath("seed").iterdir()
                if p.name.endswith(".yaml")
            )
            raise UserInputError(
                ref,
                "taxonomy",
                f"no shipped seed taxonomy '{name}'",
                f"use one of {', '.join('seed:' + s for s in shipped)}",
            )
        return ref, seed_file.read_bytes()
    path = Path(ref)
    if not path.is_file():
        raise UserInputError(ref, "taxonomy", "no such file", "give a taxonomy YAML path or seed:core")
    if path.stat().st_size > MAX_TAXONOMY_BYTES:
        raise UserInputError(
            ref, "<file>", f"is larger than {MAX_TAXONOMY_BYTES // 2**20} MiB", "split it or remove unused nodes"
        )
    return str(path), path.read_bytes()


def canonical_hash(taxonomy: Taxonomy) -> str:
    """sha256 of the content (not the formatting): the same taxonomy always hashes the same."""
    content = taxonomy.model_dump(mode="json", exclude={"content_hash"})
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def load_taxonomy(ref: str) -> Taxonomy:
    where, data = read_taxonomy_source(ref)
    return parse_taxonomy(data, where)


def parse_taxonomy(data: bytes, where: str) -> Taxonomy:
    try:
        raw = load_yaml(data.decode("utf-8")) if data.strip() else None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserInputError(
            where, "<file>", f"not readable YAML ({exc.__class__.__name__})", "save the taxonomy as UTF-8 YAML"
        ) from exc
    if raw is None:
        raise UserInputError(
            where, "<file>", "is empty", "write the taxonomy as YAML (name, version, categories) or use seed:core"
        )
    if not isinstance(raw, dict):
        raise UserInputError(where, "<root>", "is not a mapping", "start with name, version, categories")
    declared_hash = raw.pop("content_hash", "") or ""
    _resolve_scales(raw, where)
    try:
        taxonomy = Taxonomy.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise UserInputError(where, field, err["msg"], "see `populace taxonomy schema` for the format") from exc
    check_taxonomy(taxonomy, where)
    actual_hash = canonical_hash(taxonomy)
    if declared_hash and declared_hash != actual_hash:
        raise UserInputError(
            where,
            "content_hash",
            "does not match the content (the file was edited)",
            "delete the content_hash line, or bump version and rewrite it with `populace taxonomy validate --rehash`",
        )
    return taxonomy.model_copy(update={"content_hash": actual_hash})


def write_taxonomy(taxonomy: Taxonomy, path: Path) -> Taxonomy:
    """Write the taxonomy as YAML with its content hash, atomically."""
    hashed = taxonomy.model_copy(update={"content_hash": canonical_hash(taxonomy)})
    doc = hashed.model_dump(mode="json", exclude_defaults=True)
    doc["content_hash"] = hashed.content_hash
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
    return hashed


def rehash_taxonomy(ref: str) -> Taxonomy:
    """Check a taxonomy file and rewrite it with the hash of its current content (`taxonomy validate --rehash`)."""
    where, data = read_taxonomy_source(ref)
    raw = load_yaml(data.decode("utf-8"))
    if isinstance(raw, dict):
        raw.pop("content_hash", None)
    unhashed = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True).encode()
    return write_taxonomy(parse_taxonomy(unhashed, where), Path(where))


def _resolve_scales(raw: dict[str, Any], where: str) -> None:
    """Fill `values` of attributes that name a shared scale, before validation."""
    scales = raw.get("scales") or {}
    if not isinstance(scales, dict):
        raise UserInputError(where, "scales", "is not a mapping", "map each scale name to {value: weight}")

    def visit(node: object, path: str) -> None:
        if not isinstance(node, dict):
            return
        for i, attr in enumerate(node.get("attributes") or []):
            if isinstance(attr, dict) and attr.get("scale") is not None:
                name = attr["scale"]
                if name not in scales:
                    raise UserInputError(
                        where,
                        f"{path}.attributes.{i}.scale",
                        f"unknown scale '{name}'",
                        f"define it under scales or use one of {sorted(scales)}",
                    )
                if attr.get("values") and attr["values"] != scales[name]:
                    raise UserInputError(
                        where, f"{path}.attributes.{i}", "has both a scale and other values", "keep one of them"
                    )
                attr["values"] = dict(scales[name])
        for j, sub in enumerate(node.get("subcategories") or []):
            visit(sub, f"{path}.subcategories.{j}")

    for i, root in enumerate(raw.get("categories") or []):
        visit(root, f"categories.{i}")


def check_taxonomy(taxonomy: Taxonomy, where: str) -> None:
    """Reject bad structure, duplicate ids, empty domains, unknown references, bad weights and cycles."""
    for name, weights in taxonomy.scales.items():
        _check_weights(weights, where, f"scales.{name}")
    if not taxonomy.categories:
        raise UserInputError(where, "categories", "is empty", "add at least one root category")
    seen: dict[str, Attribute] = {}
    node_ids: set[str] = set()
    for root in taxonomy.categories:
        if "." in root.id:
            raise UserInputError(where, root.id, "a root category id has one part", f"call it {root.id.split('.')[0]}")
        _check_node(root, where, seen, node_ids)
    for attr in seen.values():
        _check_domain(attr, where)
        _check_references(attr, seen, where)
    sorter = graphlib.TopologicalSorter({a.id: parents_of(a) for a in seen.values()})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise UserInputError(
            where,
            cycle,
            "attributes depend on each other in a cycle",
            "remove one depends_on / applicable_when / range_by link",
        ) from exc


def _check_node(node: Node, where: str, seen: dict[str, Attribute], node_ids: set[str]) -> None:
    if node.id in node_ids:
        raise UserInputError(where, node.id, "duplicate category id", "give each category a unique id")
    node_ids.add(node.id)
    for attr in node.attributes:
        if attr.id in seen or attr.id in node_ids:
            raise UserInputError(where, attr.id, "duplicate attribute id", "give each attribute a unique id")
        if attr.id.rsplit(".", 1)[0] != node.id:
            raise UserInputError(
                where, attr.id, f"does not start with its category '{node.id}'", f"name it {node.id}.<slug>"
            )
        seen[attr.id] = attr
    for sub in node.subcategories:
        if sub.id.rsplit(".", 1)[0] != node.id or "." not in sub.id:
            raise UserInputError(
                where,
                sub.id,
                f"does not start with its parent category '{node.id}'",
                f"name it {node.id}.<slug> (categories nest at most 3 levels)",
            )
        _check_node(sub, where, seen, node_ids)


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
    if any(w < 0 or not math.isfinite(w) for w in weights.values()):
        raise UserInputError(where, field, "negative or non-finite weight", "use finite weights >= 0")
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
                    raise UserInputError(
                        where,
                        field,
                        f"values {sorted(unknown)} are not in the domain",
                        f"use values from {sorted(attr.values)}",
                    )
    elif attr.values:
        raise UserInputError(
            where,
            f"{attr.id}.values",
            f"a {attr.kind} attribute has no value list",
            "make it categorical or ordinal, or remove values",
        )
    if attr.kind == "numeric":
        if attr.minimum is None or attr.maximum is None or attr.minimum > attr.maximum:
            raise UserInputError(
                where, attr.id, "numeric attribute needs minimum <= maximum", "set minimum and maximum"
            )
        for parent_value, (low, high) in attr.range_by.ranges.items() if attr.range_by else []:
            if not attr.minimum <= low <= high <= attr.maximum:
                raise UserInputError(
                    where,
                    f"{attr.id}.range_by.ranges.{parent_value}",
                    f"range [{low}, {high}] is not inside [{attr.minimum}, {attr.maximum}]",
                    "keep each range within minimum and maximum, low <= high",
                )
    elif attr.kind == "text" and not attr.guidance:
        raise UserInputError(
            where, f"{attr.id}.guidance", "text attribute without guidance", "say in one line what the LLM should write"
        )
    if attr.provenance.source == "mined" and attr.provenance.support < 1:
        raise UserInputError(
            where,
            f"{attr.id}.provenance.support",
            "a mined attribute without support",
            "record how many conversations revealed it",
        )


def _check_references(attr: Attribute, known: dict[str, Attribute], where: str) -> None:
    for parent_id in sorted(parents_of(attr)):
        if parent_id not in known:
            raise UserInputError(
                where, attr.id, f"refers to unknown attribute '{parent_id}'", "fix the id or add that attribute"
            )
    for i, condition in enumerate(attr.applicable_when):
        parent = known[condition.attribute]
        field = f"{attr.id}.applicable_when.{i}"
        if condition.op in ("<", "<=", ">", ">=") and parent.kind != "numeric":
            raise UserInputError(
                where,
                field,
                f"compares {parent.id} ({parent.kind}) with {condition.op}",
                "use ==, !=, in or not_in on categorical attributes",
            )
        if parent.kind == "numeric" and isinstance(condition.value, list | str):
            raise UserInputError(
                where, field, f"compares numeric {parent.id} with {condition.value!r}", "compare it with a number"
            )
        named = condition.value if isinstance(condition.value, list) else [condition.value]
        if parent.kind in ("categorical", "ordinal"):
            unknown = sorted(str(v) for v in named if v not in parent.values)
            if unknown:
                raise UserInputError(
                    where,
                    field,
                    f"values {unknown} are not in {parent.id}'s domain",
                    f"use values from {sorted(parent.values)}",
                )
    if attr.depends_on:
        parent = known[attr.depends_on.attribute]
        missing = set(parent.values) - set(attr.depends_on.table)
        if missing:
            raise UserInputError(
                where,
                f"{attr.id}.depends_on.table",
                f"no row for parent values {sorted(missing)}",
                "add a row for each",
            )
    if attr.range_by:
        parent = known[attr.range_by.attribute]
        missing = set(parent.values) - set(attr.range_by.ranges)
        if missing:
            raise UserInputError(
                where,
                f"{attr.id}.range_by.ranges",
                f"no range for parent values {sorted(missing)}",
                "add a range for each",
            )
