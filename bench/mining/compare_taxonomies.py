"""The seed taxonomy's shape beside DeepPersona's released taxonomies (read from ../shared, never copied).

Counts roots, nodes, leaves, the leaf depth histogram, leaves with value domains and priors,
and near-duplicate sibling labels (cosine >= 0.85 with the shipped static embedder, the kind
"Core Values and Beliefs" beside "Core Values, Beliefs, and Philosophy" is). Usage:
  python bench/mining/compare_taxonomies.py [--taxonomy seed:core]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from dedup.embedders.static import StaticEmbedder  # noqa: E402
from taxonomy.loader import load_taxonomy  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "reference_taxonomies"
NEAR_DUPLICATE = 0.85


def near_duplicate_pairs(labels: list[str], embedder: StaticEmbedder) -> int:
    if len(labels) < 2:
        return 0
    vectors = embedder.embed(labels)
    sims = vectors @ vectors.T
    return int(np.triu(sims >= NEAR_DUPLICATE, k=1).sum())


def tree_stats(tree: dict, embedder: StaticEmbedder) -> dict:
    depth: Counter = Counter()
    nodes = leaves = duplicates = 0

    def visit(children: dict, level: int) -> None:
        nonlocal nodes, leaves, duplicates
        duplicates += near_duplicate_pairs(list(children), embedder)
        for child in children.values():
            nodes += 1
            if child:
                visit(child, level + 1)
            else:
                leaves += 1
                depth[level] += 1

    visit(tree, 1)
    return {
        "roots": len(tree),
        "nodes": nodes,
        "leaves": leaves,
        "depth_histogram": {str(k): depth[k] for k in sorted(depth)},
        "share_with_priors": 0.0,
        "near_duplicate_sibling_pairs": duplicates,
        "root_near_duplicates": near_duplicate_pairs(list(tree), embedder),
    }


def ours_stats(ref: str, embedder: StaticEmbedder) -> dict:
    taxonomy = load_taxonomy(ref)
    leaves = list(taxonomy.attributes().values())
    depth = Counter(a.id.count(".") + 1 for a in leaves)
    duplicates = near_duplicate_pairs([r.label for r in taxonomy.categories], embedder)
    for node in taxonomy.nodes():
        duplicates += near_duplicate_pairs([s.label for s in node.subcategories], embedder)
        duplicates += near_duplicate_pairs([a.label for a in node.attributes], embedder)
    return {
        "roots": len(taxonomy.categories),
        "nodes": len(taxonomy.nodes()) + len(leaves),
        "leaves": len(leaves),
        "depth_histogram": {str(k): depth[k] for k in sorted(depth)},
        "share_with_priors": round(sum(a.has_prior for a in leaves) / len(leaves), 3),
        "near_duplicate_sibling_pairs": duplicates,
        "root_near_duplicates": near_duplicate_pairs([r.label for r in taxonomy.categories], embedder),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--taxonomy", default="seed:core")
    args = parser.parse_args()
    embedder = StaticEmbedder()
    rows = {args.taxonomy: ours_stats(args.taxonomy, embedder)}
    if SHARED.is_dir():
        for path in sorted(SHARED.glob("deeppersona_*.json")):
            tree = json.loads(path.read_text())
            if isinstance(tree, dict) and all(isinstance(v, dict) for v in tree.values()):
                rows[path.stem] = tree_stats(tree, embedder)
    else:
        print(f"note: {SHARED} is absent; showing populace only")
    keys = ("roots", "nodes", "leaves", "share_with_priors", "near_duplicate_sibling_pairs", "root_near_duplicates")
    print(f"{'taxonomy':36}" + "".join(f"{k[:14]:>16}" for k in keys) + "  depth histogram")
    for name, stats in rows.items():
        print(f"{name:36}" + "".join(f"{stats[k]!s:>16}" for k in keys) + f"  {stats['depth_histogram']}")


if __name__ == "__main__":
    main()
