"""The pure steps of mining, around the LLM call: conversations -> snippets, candidates -> taxonomy.

The embedder is passed in as a function, so this package stays free of model code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from schemas.mining_config import MiningConfig
from taxonomy.mining.assemble import assemble_taxonomy
from taxonomy.mining.candidates import Candidate
from taxonomy.mining.conversations import read_conversations
from taxonomy.mining.merge import MergePlan, plan_merge
from taxonomy.mining.revealing import Snippet, find_revealing, sample_snippets
from taxonomy.mining.scrub import scrub_text
from taxonomy.model import MAX_NODE_DEPTH, Taxonomy

Embed = Callable[[list[str]], np.ndarray]


def collect_snippets(paths: list[Path], cfg: MiningConfig) -> tuple[list[Snippet], dict[str, Any]]:
    """Read and scrub every conversation, find revealing sentences, sample them; plus the funnel counts."""
    conversations = read_conversations(paths)
    pii: Counter[str] = Counter()
    scrubbed = {c.key: [scrub_text(turn, pii) for turn in c.user_turns] for c in conversations}
    found = find_revealing(
        conversations, scrubbed, cfg.min_snippet_chars, cfg.max_snippet_chars, cfg.max_snippets_per_conversation
    )
    picked = sample_snippets(found, cfg.max_snippets, cfg.seed)
    funnel = {
        "files": len(paths),
        "conversations": len(conversations),
        "user_turns": sum(len(c.user_turns) for c in conversations),
        "pii_scrubbed": dict(sorted(pii.items())),
        "revealing_sentences": len(found),
        "conversations_revealing": len({s.conversation for s in found}),
        "snippets_sent": len(picked),
    }
    return picked, funnel


def node_text(label: str, description: str) -> str:
    return f"{label}. {description}" if description else label


def merge_candidates(
    seed: Taxonomy, candidates: list[Candidate], embed: Embed, cfg: MiningConfig
) -> tuple[Taxonomy, MergePlan, dict[str, str]]:
    """Embed candidates, leaves and nodes; merge, cluster, attach; assemble the new taxonomy."""
    leaves = list(seed.attributes().values())
    nodes = [n for n in seed.nodes() if n.id.count(".") < MAX_NODE_DEPTH]  # room for one more part
    leaf_vectors = embed([a.label for a in leaves])  # labels against labels: like with like
    plan = plan_merge(
        candidates,
        embed([c.label for c in candidates]) if candidates else np.zeros((0, leaf_vectors.shape[1]), np.float32),
        [a.id for a in leaves],
        leaf_vectors,
        [n.id for n in nodes],
        embed([node_text(n.label, n.description) for n in nodes]),
        cfg.merge_threshold,
        cfg.attach_threshold,
        cfg.min_support,
    )
    mined, placed = assemble_taxonomy(seed, plan, cfg.min_support, cfg.merge_rule_version)
    return mined, plan, placed
