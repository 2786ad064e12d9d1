"""Turn a merge plan into a new taxonomy version: seed leaves gain support, new attributes gain homes.

Provenance keeps hashed conversation keys only (at most MAX_SOURCE_IDS per attribute). A value
enters a categorical domain only when at least `min_support` conversations gave it, so one
person's answer never becomes part of the taxonomy.
"""

from __future__ import annotations

import re
from typing import Any

from taxonomy.mining.merge import MergePlan, NewAttribute
from taxonomy.model import MAX_NODE_DEPTH, Attribute, Provenance, Taxonomy

MAX_SOURCE_IDS = 20
MINED_ROOT_ID = "mined"
EMERGING_SLUG = "emerging"


def slugify(label: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    return slug if slug and slug[0].isalpha() else f"a_{slug}"


def assemble_taxonomy(seed: Taxonomy, plan: MergePlan, min_support: int, rule: str) -> tuple[Taxonomy, dict[str, str]]:
    """(new taxonomy, {label of each added attribute: its id}); the seed object is not modified."""
    doc = seed.model_dump(mode="python", exclude={"content_hash"})
    nodes = {n["id"]: n for n in _walk(doc["categories"])}
    leaves = {a["id"]: a for n in nodes.values() for a in n["attributes"]}
    for leaf_id, conversations in plan.merged.items():
        provenance = leaves[leaf_id]["provenance"]
        provenance["support"] += len(conversations)
        provenance["source_ids"] = sorted(set(provenance["source_ids"]) | conversations)[:MAX_SOURCE_IDS]
    placed: dict[str, str] = {}
    for attribute in sorted(plan.added, key=lambda a: (-a.support, a.label)):
        home = _home_node(attribute, doc, nodes)
        attr_id = f"{home['id']}.{slugify(attribute.label)}"
        if attr_id in leaves:  # same slug as an existing leaf: it is that leaf
            provenance = leaves[attr_id]["provenance"]
            provenance["support"] += attribute.support
            provenance["source_ids"] = sorted(set(provenance["source_ids"]) | attribute.conversations)[:MAX_SOURCE_IDS]
            placed[attribute.label] = attr_id
            continue
        leaf = _mined_leaf(attr_id, attribute, min_support, rule)
        home["attributes"].append(leaf)
        leaves[attr_id] = leaf
        placed[attribute.label] = attr_id
    doc["name"] = f"{seed.name}-mined"
    doc["version"] = f"{seed.version}+mined.{rule}"
    return Taxonomy.model_validate(doc), placed


def _walk(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for node in nodes:
        out.append(node)
        out.extend(_walk(node["subcategories"]))
    return out


def _home_node(attribute: NewAttribute, doc: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The attached node, or an `emerging` subtree under the LLM's root, or the `mined` root."""
    if attribute.home is not None and attribute.home.count(".") < MAX_NODE_DEPTH:
        return nodes[attribute.home]
    roots = {n["id"] for n in doc["categories"]}
    if attribute.llm_category in roots:
        subtree_id = f"{attribute.llm_category}.{EMERGING_SLUG}"
        if subtree_id not in nodes:
            nodes[subtree_id] = _node(
                subtree_id, "Emerging (mined)", "Attributes mined from conversations that no seed category holds."
            )
            nodes[attribute.llm_category]["subcategories"].append(nodes[subtree_id])
        return nodes[subtree_id]
    if MINED_ROOT_ID not in nodes:
        nodes[MINED_ROOT_ID] = _node(
            MINED_ROOT_ID, "Mined, unplaced", "Attributes mined from conversations that fit no seed root category."
        )
        doc["categories"].append(nodes[MINED_ROOT_ID])
    return nodes[MINED_ROOT_ID]


def _node(node_id: str, label: str, description: str) -> dict[str, Any]:
    return {"id": node_id, "label": label, "description": description, "attributes": [], "subcategories": []}


def _mined_leaf(attr_id: str, attribute: NewAttribute, min_support: int, rule: str) -> dict[str, Any]:
    label = attribute.label[0].upper() + attribute.label[1:]
    shared = {v: n for v, n in attribute.values.items() if n >= min_support}
    leaf = Attribute(
        id=attr_id,
        label=label,
        description=f"Mined from {attribute.support} conversations ({rule}).",
        kind="text",
        guidance=f"The persona's {attribute.label}, in a few words.",
        provenance=Provenance(
            source="mined", support=attribute.support, source_ids=sorted(attribute.conversations)[:MAX_SOURCE_IDS]
        ),
    )
    if attribute.kind == "categorical" and len(shared) >= 2:
        total = sum(attribute.values.values())
        weights = {v: n / total for v, n in sorted(shared.items())}
        rest = 1.0 - sum(weights.values())
        if rest > 1e-9:
            weights["other"] = weights.get("other", 0.0) + rest
        leaf = leaf.model_copy(update={"kind": "categorical", "values": weights, "guidance": ""})
    return leaf.model_dump(mode="python")
