"""Fuzzy dedup: accuracy per Jaccard band against distilabel-style LSH, and speed at scale.

(a) Planted near-duplicates of real persona texts (../shared/data) across Jaccard bands
    0.55-1.0 on word 1-grams, plus paraphrases (reordered sentences, synonym swaps). Compared,
    same corpus, same run: populace's verified MinHash-LSH (bands from the S-curve, every
    candidate checked by exact Jaccard) and a distilabel-style single-process datasketch
    MinHashLSH with its defaults (threshold 0.9, 128 permutations, datasketch's own bands,
    candidates taken as duplicates).
(b) Synthetic persona texts at 100k (and 1M with --scale): wall time and peak RSS of
    populace's fuzzy dedup against the naive loop (MinHash() + update per document, then
    MinHashLSH insert and query), each in a fresh process, printed as ratios.

    python bench/dedup/bench_dedup.py [--bases 3000] [--scale 100000 1000000] [--naive-max 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from planting import load_base_texts, reorder_sentences, swap_synonyms

BANDS = [(0.55, 0.7), (0.7, 0.8), (0.8, 0.85), (0.85, 0.9), (0.9, 0.95), (0.95, 1.01)]


def words(text: str) -> set[str]:
    from dedup.normalize import word_shingles

    return word_shingles(text, 1)


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b)


def plant_at(text: str, target: float, rng: random.Random, vocabulary: list[str]) -> str:
    """Replace random words with vocabulary words until the 1-gram Jaccard drops to target."""
    tokens = text.split()
    base = words(text)
    variant = tokens[:]
    while jaccard(base, words(" ".join(variant))) > target:
        variant[rng.randrange(len(variant))] = rng.choice(vocabulary)
    return " ".join(variant)


def planted_corpus(bases: list[str], seed: int):
    rng = random.Random(seed)
    vocabulary = sorted({w for t in bases for w in t.split()})
    texts = list(bases)
    truth = []  # (i, j, jaccard, kind)
    for i, base in enumerate(bases):
        kind = rng.random()
        if kind < 0.8:
            variant = plant_at(base, rng.uniform(0.55, 1.0), rng, vocabulary)
            label = "edit"
        elif kind < 0.9:
            variant, label = reorder_sentences(base, rng), "reorder"
        else:
            variant, label = swap_synonyms(base), "synonyms"
        texts.append(variant)
        truth.append((i, len(texts) - 1, jaccard(words(base), words(variant)), label))
    return texts, truth


def populace_pairs(texts: list[str], threshold: float) -> set[tuple[int, int]]:
    from dedup.detect import DedupItems, compute_features, find_pairs
    from schemas.config import DedupConfig

    cfg = DedupConfig(preset="personahub", minhash_threshold=threshold, exact=False, semantic=False, facts=False)
    items = compute_features(
        DedupItems(ids=[str(i) for i in range(len(texts))], texts=texts, ranks=[0.0] * len(texts)), cfg, None
    )
    return {(min(p.a, p.b), max(p.a, p.b)) for p in find_pairs(items, cfg)}


def distilabel_style_pairs(texts: list[str]) -> set[tuple[int, int]]:
    """datasketch defaults as distilabel's MinHashDedup uses them: words, 1-grams, 128 perms, 0.9."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=0.9, num_perm=128)
    pairs = set()
    for index, text in enumerate(texts):
        sketch = MinHash(num_perm=128, seed=1)
        for token in words(text):
            sketch.update(token.encode())
        for other in lsh.query(sketch):
            pairs.add((other, index))
        lsh.insert(index, sketch)
    return pairs


def accuracy_table(texts, truth, systems: dict[str, set]) -> None:
    token_sets = [words(t) for t in texts]
    print(f"{'band (1-gram Jaccard)':<24}" + "".join(f"{name:>22}" for name in systems) + f"{'pairs':>8}")
    for low, high in BANDS:
        in_band = [(i, j) for i, j, jac, kind in truth if kind == "edit" and low <= jac < high]
        cells = "".join(
            f"{sum(p in found for p in in_band) / max(1, len(in_band)):>22.3f}" for found in systems.values()
        )
        print(f"{f'[{low:.2f}, {min(high, 1.0):.2f})':<24}{cells}{len(in_band):>8}")
    for kind in ("reorder", "synonyms"):
        planted = [(i, j) for i, j, _, k in truth if k == kind]
        cells = "".join(
            f"{sum(p in found for p in planted) / max(1, len(planted)):>22.3f}" for found in systems.values()
        )
        print(f"{'paraphrase: ' + kind:<24}{cells}{len(planted):>8}")
    for cut in (0.85, 0.9):
        row = []
        for found in systems.values():
            true_hits = sum(jaccard(token_sets[a], token_sets[b]) >= cut for a, b in found)
            relevant = [(i, j) for i, j, jac, _ in truth if jac >= cut]
            recall = sum(p in found for p in relevant) / len(relevant)
            row.append(f"P {true_hits / max(1, len(found)):.3f} R {recall:.3f}")
        print(f"{f'pairs with J >= {cut}':<24}" + "".join(f"{cell:>22}" for cell in row))


def synthetic_personas(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    first = ["Ana", "Ben", "Chloe", "Diego", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kara", "Liam"]
    last = ["Lopez", "Smith", "Nguyen", "Okafor", "Patel", "Kowalski", "Rossi", "Haddad", "Kim", "Brown"]
    jobs = ["nurse", "teacher", "electrician", "accountant", "cook", "farmer", "pharmacist", "driver", "clerk"]
    places = ["Tucson", "Ohio", "Boston", "Fresno", "Atlanta", "Denver", "Tampa", "Reno", "Omaha", "Austin"]
    hobbies = ["gardening", "chess", "running", "knitting", "fishing", "baking", "hiking", "painting", "jazz"]
    values = ["family", "honesty", "freedom", "faith", "security", "adventure", "fairness", "kindness"]
    texts = []
    for i in range(count):
        if i and rng.random() < 0.05:  # planted near-duplicate of an earlier text
            words_ = texts[int(rng.integers(0, i))].split()
            words_[int(rng.integers(0, len(words_)))] = str(rng.choice(hobbies))
            texts.append(" ".join(words_))
            continue
        pick = lambda xs: str(rng.choice(xs))  # noqa: E731
        texts.append(
            f"{pick(first)} {pick(last)} is a {int(rng.integers(18, 90))}-year-old {pick(jobs)} from {pick(places)} "
            f"who spends weekends {pick(hobbies)} and evenings {pick(hobbies)}. {pick(first)} values {pick(values)} "
            f"above all, saves {int(rng.integers(1, 40))} percent of income, and hopes to move to {pick(places)} "
            f"within {int(rng.integers(2, 15))} years to be closer to {pick(first)}, a friend from {pick(places)} "
            f"who also loves {pick(hobbies)}; ticket {int(rng.integers(0, 10**9))}."
        )
    return texts


def scale_worker(system: str, count: int, seed: int) -> None:
    texts = synthetic_personas(count, seed)
    started = time.perf_counter()
    if system == "populace":
        from dedup.detect import DedupItems, find_duplicates
        from schemas.config import DedupConfig

        cfg = DedupConfig(minhash_threshold=0.8, semantic=False, facts=False)
        clusters = find_duplicates(
            DedupItems(ids=[str(i) for i in range(count)], texts=texts, ranks=[float(i) for i in range(count)]), cfg
        )
        removed = clusters.num_rows - sum(clusters.column("kept").to_pylist())
    else:
        from datasketch import MinHash, MinHashLSH

        from dedup.normalize import word_shingles

        lsh = MinHashLSH(threshold=0.8, num_perm=128)
        flagged = set()
        for index, text in enumerate(texts):
            sketch = MinHash(num_perm=128)
            for shingle in word_shingles(text, 3):
                sketch.update(shingle.encode())
            if lsh.query(sketch):
                flagged.add(index)
            lsh.insert(index, sketch)
        removed = len(flagged)
    seconds = time.perf_counter() - started
    hwm = next(
        int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:")
    )
    print(
        json.dumps(
            {"system": system, "texts": count, "seconds": seconds, "peak_rss_mb": hwm / 1024, "removed": removed}
        )
    )


def run_scale(system: str, count: int, seed: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--scale-worker", system, "--scale", str(count), "--seed", str(seed)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", type=int, default=3000)
    parser.add_argument("--scale", type=int, nargs="*", default=[100_000])
    parser.add_argument("--naive-max", type=int, default=100_000, help="Largest size the naive loop runs on.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale-worker", choices=["populace", "naive"])
    args = parser.parse_args()
    if args.scale_worker:
        scale_worker(args.scale_worker, args.scale[0], args.seed)
        return

    texts, truth = planted_corpus(load_base_texts(args.bases, args.seed), args.seed)
    print(f"(a) {len(texts)} texts, {len(truth)} planted pairs; share of planted pairs found per band")
    started = time.perf_counter()
    systems = {"populace@0.9": populace_pairs(texts, 0.9), "populace@0.85": populace_pairs(texts, 0.85)}
    ours_seconds = time.perf_counter() - started
    started = time.perf_counter()
    systems["distilabel-style@0.9"] = distilabel_style_pairs(texts)
    theirs_seconds = time.perf_counter() - started
    print(f"    populace (both thresholds) {ours_seconds:.1f} s, distilabel-style {theirs_seconds:.1f} s")
    accuracy_table(texts, truth, systems)

    print("(b) synthetic persona texts (5% planted near-duplicates), word 3-grams, threshold 0.8")
    print(f"{'texts':>9} {'system':>9} {'seconds':>9} {'texts/s':>9} {'peak RSS MB':>12} {'removed':>8}")
    for count in args.scale:
        rows = [run_scale("populace", count, args.seed)]
        if count <= args.naive_max:
            rows.append(run_scale("naive", count, args.seed))
        for row in rows:
            print(
                f"{count:>9} {row['system']:>9} {row['seconds']:>9.1f} {count / row['seconds']:>9.0f} "
                f"{row['peak_rss_mb']:>12.0f} {row['removed']:>8}"
            )
        if len(rows) == 2:
            print(
                f"{'':>9} ratio: populace is {rows[1]['seconds'] / rows[0]['seconds']:.1f}x faster, "
                f"{rows[0]['peak_rss_mb'] / rows[1]['peak_rss_mb']:.2f}x the naive loop's peak RSS"
            )


if __name__ == "__main__":
    main()
