"""Mining benchmark: how much of what users revealed does mining recover, against a no-detector baseline.

ConvAI2 (the human's given persona) and PrefEval (the preference the user reveals in passing)
carry the ground truth. For a deterministic sample of their conversations this runs the mining
steps (scrub, revealing-sentence detection, LLM extraction under JSON schema, merge) and, in
the same run, a baseline that sends the first user sentences of each conversation to the same
LLM with the same budget per conversation. It prints, per arm:
  surfaced   share of revealed statements that a sentence sent to the LLM covers (half of its
             content words)
  recovered  share of revealed statements for which a grounded candidate from the same
             conversation has a value inside the statement
  kept       share of revealed statements recovered by a candidate that the merge step
             merged into a leaf or added (not rejected for support)
and the ratio mining / baseline. Reads ../shared/data/conversations; says so when it is absent.
Usage:
  python bench/mining/bench_mining.py --per-source 16 --per-conversation 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from dedup.embedders.static import StaticEmbedder  # noqa: E402
from schemas.mining_config import MiningConfig  # noqa: E402
from taxonomy.loader import load_taxonomy  # noqa: E402
from taxonomy.mining.candidates import is_grounded  # noqa: E402
from taxonomy.mining.conversations import read_conversations  # noqa: E402
from taxonomy.mining.pipeline import collect_snippets, merge_candidates  # noqa: E402
from taxonomy.mining.revealing import SENTENCE_SPLIT, Snippet  # noqa: E402
from taxonomy.mining.scrub import scrub_text  # noqa: E402
from workers.extraction import build_extraction_requests, parse_extraction  # noqa: E402
from workers.factory import create_backend  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "conversations"
SOURCES = {"convai2_wild_eval.jsonl": "user_profile", "prefeval_persona_driven.jsonl": "preference"}
_STOP = {
    "that",
    "with",
    "have",
    "this",
    "from",
    "they",
    "them",
    "what",
    "when",
    "very",
    "like",
    "love",
    "really",
    "just",
    "about",
    "would",
    "will",
    "been",
    "were",
    "your",
    "more",
    "than",
    "into",
    "prefer",
    "strong",
}


def content_words(text: str) -> set[str]:
    return {w[:5] for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 4 and w not in _STOP}


def sample_rows(per_source: int, seed: int) -> list[tuple[dict, list[str]]]:
    """(conversation row, revealed statements) for a hash-ordered sample of each source."""
    picked = []
    for name, field in SOURCES.items():
        rows = [json.loads(line) for line in (SHARED / name).read_text().splitlines() if line.strip()]
        rows.sort(key=lambda r: hashlib.sha256(f"{seed}{r['id']}".encode()).hexdigest())
        for row in rows[:per_source]:
            revealed = row["meta"][field]
            picked.append((row, revealed if isinstance(revealed, list) else [revealed]))
    return picked


def baseline_snippets(paths: list[Path], cfg: MiningConfig) -> list[Snippet]:
    """The first user sentences of each conversation, scrubbed, no disclosure detection."""
    out = []
    for conversation in read_conversations(paths):
        sentences = [s.strip() for turn in conversation.user_turns for s in SENTENCE_SPLIT.split(scrub_text(turn))]
        sentences = [s for s in sentences if cfg.min_snippet_chars <= len(s) <= cfg.max_snippet_chars]
        out += [
            Snippet(conversation.key, conversation.source, s, 0) for s in sentences[: cfg.max_snippets_per_conversation]
        ]
    return out


def run_arm(snippets: list[Snippet], backend, taxonomy, cfg: MiningConfig, embedder, truth) -> dict:
    started = time.perf_counter()
    requests = build_extraction_requests(snippets, taxonomy, cfg.backend, cfg.seed, cfg.max_candidates_per_snippet)
    roots = {r.id for r in taxonomy.categories}
    candidates, failures = [], 0
    for snippet, result in zip(snippets, backend.generate(requests), strict=True):
        kept, _, failure = parse_extraction(result, snippet, roots)
        candidates += kept
        failures += failure is not None
    _, plan, _ = merge_candidates(taxonomy, candidates, embedder.embed, cfg)
    rejected = {i for a in plan.rejected for i in a.members}
    statements = surfaced = recovered = kept_n = 0
    for key, revealed in truth.items():
        sent = [s.text for s in snippets if s.conversation == key]
        mine = [(i, c) for i, c in enumerate(candidates) if c.conversation == key]
        for statement in revealed:
            statements += 1
            words = content_words(statement)
            surfaced += any(words and len(words & content_words(t)) >= len(words) / 2 for t in sent)
            hits = [i for i, c in mine if is_grounded(c.value, statement)]
            recovered += bool(hits)
            kept_n += any(i not in rejected for i in hits)
    return {
        "snippets": len(snippets),
        "candidates": len(candidates),
        "extraction_failures": failures,
        "merged_candidates": plan.merged_candidates,
        "added": len(plan.added),
        "rejected": len(plan.rejected),
        "statements": statements,
        "surfaced": surfaced / statements,
        "recovered": recovered / statements,
        "kept": kept_n / statements,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-source", type=int, default=16)
    parser.add_argument("--per-conversation", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="packaged model name or GGUF path (default: the embedded one)")
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} is absent (ConvAI2 and PrefEval are not shipped with populace)")
        return
    cfg = MiningConfig(max_snippets=1_000_000, max_snippets_per_conversation=args.per_conversation, seed=args.seed)
    if args.model:
        cfg.backend.model = args.model
    rows = sample_rows(args.per_source, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sample.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row, _ in rows))
        conversations = read_conversations([path])
        truth = {c.key: revealed for c, (_, revealed) in zip(conversations, rows, strict=True)}
        mined_snippets, funnel = collect_snippets([path], cfg)
        base_snippets = baseline_snippets([path], cfg)
    taxonomy = load_taxonomy("seed:core")
    backend = create_backend(cfg.backend)
    embedder = StaticEmbedder()
    mining = run_arm(mined_snippets, backend, taxonomy, cfg, embedder, truth)
    baseline = run_arm(base_snippets, backend, taxonomy, cfg, embedder, truth)
    print(
        f"{len(rows)} conversations ({args.per_source} per source), {funnel['revealing_sentences']} revealing "
        f"sentences, model {cfg.backend.model}, merge {cfg.merge_rule_version} at {cfg.merge_threshold}"
    )
    print(f"{'':22}{'mining':>10}{'baseline':>10}{'ratio':>8}")
    for key in (
        "snippets",
        "candidates",
        "extraction_failures",
        "merged_candidates",
        "added",
        "rejected",
        "surfaced",
        "recovered",
        "kept",
        "seconds",
    ):
        a, b = mining[key], baseline[key]
        ratio = f"{a / b:.2f}" if isinstance(b, int | float) and b else "-"
        fmt = (lambda v: f"{v:.3f}") if isinstance(a, float) and key != "seconds" else str
        print(f"{key:22}{fmt(a):>10}{fmt(b):>10}{ratio:>8}")
    per_call = [m["recovered"] * m["statements"] / max(m["snippets"], 1) for m in (mining, baseline)]
    print(
        f"recovered statements per LLM call: mining {per_call[0]:.3f}, baseline {per_call[1]:.3f}, "
        f"ratio {per_call[0] / per_call[1]:.2f}"
        if per_call[1]
        else "baseline recovered nothing"
    )


if __name__ == "__main__":
    main()
