"""Taxonomy statistics and diffs for `populace taxonomy stats|diff`."""

from __future__ import annotations

from collections import Counter
from typing import Any

from taxonomy.model import Taxonomy


def taxonomy_stats(taxonomy: Taxonomy) -> dict[str, Any]:
    leaves = list(taxonomy.attributes().values())
    depth = Counter(a.id.count(".") + 1 for a in leaves)
    return {
        "name": taxonomy.name,
        "version": taxonomy.version,
        "content_hash": taxonomy.content_hash,
        "roots": len(taxonomy.categories),
        "nodes": len(taxonomy.nodes()) + len(leaves),
        "categories": len(taxonomy.nodes()),
        "leaves": len(leaves),
        "depth_histogram": {str(k): depth[k] for k in sorted(depth)},
        "share_with_priors": sum(a.has_prior for a in leaves) / len(leaves) if leaves else 0.0,
        "kinds": dict(Counter(a.kind for a in leaves)),
        "core": sum(a.core for a in leaves),
        "conditional": sum(bool(a.applicable_when or a.depends_on or a.range_by) for a in leaves),
        "census_cited": sum(bool(a.provenance.citation) for a in leaves),
        "mined": sum(a.provenance.source == "mined" for a in leaves),
        "leaves_per_root": {r.id: sum(1 for a in leaves if a.root == r.id) for r in taxonomy.categories},
    }


def taxonomy_diff(old: Taxonomy, new: Taxonomy) -> dict[str, Any]:
    """Added, removed and changed attributes (by id); changed means any field differs."""
    before, after = old.attributes(), new.attributes()
    changed = sorted(a for a in set(before) & set(after) if before[a] != after[a])
    return {
        "from": {"name": old.name, "version": old.version, "hash": old.content_hash},
        "to": {"name": new.name, "version": new.version, "hash": new.content_hash},
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": changed,
        "counts": {
            "added": len(set(after) - set(before)),
            "removed": len(set(before) - set(after)),
            "changed": len(changed),
            "unchanged": len(set(before) & set(after)) - len(changed),
        },
    }
