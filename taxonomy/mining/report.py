"""The mining diff report: what was added, merged and rejected against the input taxonomy, with counts.

It holds labels, ids, counts and hashed keys only; no sentence or value from a conversation.
"""

from __future__ import annotations

from typing import Any

from taxonomy.inspect import taxonomy_diff
from taxonomy.mining.merge import MergePlan
from taxonomy.model import Taxonomy


def mining_report(
    seed: Taxonomy,
    mined: Taxonomy,
    plan: MergePlan,
    placed: dict[str, str],
    funnel: dict[str, Any],
    settings: dict[str, Any],
) -> dict[str, Any]:
    diff = taxonomy_diff(seed, mined)
    added_ids = set(diff["added"])
    return {
        "from": diff["from"],
        "to": diff["to"],
        "settings": settings,
        "funnel": funnel,
        "counts": {
            "candidates": funnel.get("candidates_kept", 0),
            "merged_candidates": plan.merged_candidates,
            "merged_into_leaves": len(plan.merged),
            "new_clusters": len(plan.added) + len(plan.rejected),
            "added": len(added_ids),
            "added_attached": sum(1 for a in plan.added if a.home is not None),
            "added_new_subtree": sum(1 for a in plan.added if a.home is None),
            "rejected": len(plan.rejected),
        },
        "added": [
            {
                "id": placed[a.label],
                "label": a.label,
                "support": a.support,
                "kind": a.kind,
                "attached_to": a.home,
                "similarity_to_home": round(a.home_similarity, 4),
                "new": placed[a.label] in added_ids,
            }
            for a in sorted(plan.added, key=lambda a: (-a.support, a.label))
        ],
        "merged": [
            {"id": leaf, "support": len(conversations)}
            for leaf, conversations in sorted(plan.merged.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        ],
        "rejected": [
            {"label": a.label, "support": a.support, "reason": "below_min_support"}
            for a in sorted(plan.rejected, key=lambda a: (-a.support, a.label))
        ],
    }


def report_markdown(report: dict[str, Any]) -> str:
    counts, funnel, settings = report["counts"], report["funnel"], report["settings"]
    lines = [
        f"# Mining report: {report['from']['name']} {report['from']['version']} -> "
        f"{report['to']['name']} {report['to']['version']}",
        "",
        f"Merge rule {settings['merge_rule_version']}: merge at cosine >= {settings['merge_threshold']}, "
        f"attach at >= {settings['attach_threshold']}, min support {settings['min_support']} conversations; "
        f"embedder {settings['embedder']}; backend {settings['backend']} ({settings['model']}).",
        "",
        "| step | count |",
        "|---|---|",
        *[f"| {key.replace('_', ' ')} | {value} |" for key, value in funnel.items() if not isinstance(value, dict)],
        *[f"| {key.replace('_', ' ')} | {value} |" for key, value in counts.items()],
        "",
        "PII scrubbed: " + (", ".join(f"{k} {v}" for k, v in sorted(funnel.get("pii_scrubbed", {}).items())) or "none"),
        "",
        "## Added",
        "",
        "| id | support | attached to | cosine |",
        "|---|---|---|---|",
        *[
            f"| {a['id']} | {a['support']} | {a['attached_to'] or '(new subtree)'} | {a['similarity_to_home']} |"
            for a in report["added"]
        ],
        "",
        "## Merged into existing leaves",
        "",
        "| id | support |",
        "|---|---|",
        *[f"| {m['id']} | {m['support']} |" for m in report["merged"]],
        "",
        "## Rejected",
        "",
        "| label | support | reason |",
        "|---|---|---|",
        *[f"| {r['label']} | {r['support']} | {r['reason']} |" for r in report["rejected"]],
        "",
    ]
    return "\n".join(lines)
