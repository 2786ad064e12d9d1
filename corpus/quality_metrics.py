"""Offline corpus-quality metrics, computed the same way for our corpus and any other generator's.

Each function is pure over texts, flattened records or unit vectors, so every corpus goes
through the same code. Definitions (what the evaluate table shows):
- distinct-n: unique word n-grams / all word n-grams over the whole corpus (lowercased words);
- char distinct-n per record (HACHIMI's variant): unique character n-grams / all character
  n-grams within one record's text, averaged over records;
- Self-BLEU-2: BLEU with 1- and 2-grams of each sampled text against the other sampled texts,
  averaged (sacrebleu; 0-100, lower is more diverse);
- template flag: a record containing a word 6-gram that at least 5% of records (and at least
  3) also contain: formulaic openings and boilerplate;
- template overlap (HACHIMI warning): two string fields of one record, each at least 40
  characters, with word-trigram Jaccard >= 0.5;
- attribute-value surprisal: -log2 of a short value's share among its attribute's values,
  averaged over every (attribute, value) in the corpus (values up to 40 characters);
- nearest-neighbour distance: 1 - cosine to the closest other record (FAISS, exact);
- dispersion: mean pairwise cosine distance; Vendi score: exp of the entropy of the
  eigenvalues of K/n for the cosine kernel K of a sample.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence

import faiss
import numpy as np

WORD = re.compile(r"[a-z0-9']+")
PARAGRAPH_BOUNDS = (80, 800)
MAX_SURPRISAL_VALUE_CHARS = 40


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[str], n: int) -> float:
    grams = [g for text in texts for g in ngrams(words(text), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def char_distinct_n(texts: Sequence[str], n: int) -> float:
    """HACHIMI's per-record character-level distinct-n, averaged over records with any n-gram."""
    scores = []
    for text in texts:
        grams = ngrams(text, n)
        if grams:
            scores.append(len(set(grams)) / len(grams))
    return float(np.mean(scores)) if scores else 0.0


def self_bleu2(texts: Sequence[str]) -> float:
    """Mean sentence BLEU-2 of each text against all the others (sacrebleu's BLEU, effective order).

    The same statistics sacrebleu's sentence_score gathers, with each text tokenized and counted
    once instead of once per hypothesis it is a reference for: n texts cost O(n) n-gram counts
    plus a closest-length search, not n^2 tokenizations."""
    from sacrebleu.metrics.bleu import BLEU
    from sacrebleu.metrics.helpers import extract_all_word_ngrams

    texts = [t for t in texts if t.strip()]
    if len(texts) < 2:
        return 0.0
    bleu = BLEU(max_ngram_order=2, effective_order=True)
    counted = [extract_all_word_ngrams(bleu.tokenizer(t.rstrip()), 1, 2) for t in texts]
    # Per n-gram its two largest counts and who holds the largest: the most any *other* text has.
    best: dict[tuple[str, ...], list[int]] = {}
    for owner, (grams, _) in enumerate(counted):
        for gram, count in grams.items():
            top = best.setdefault(gram, [0, -1, 0])  # largest, its owner, second largest
            if count > top[0]:
                top[:] = [count, owner, top[0]]
            elif count > top[2]:
                top[2] = count
    lengths = np.array([length for _, length in counted])
    scores = []
    for i, (grams, hyp_len) in enumerate(counted):
        others = np.delete(lengths, i)
        ref_len = int(min(others, key=lambda length: (abs(length - hyp_len), length)))
        correct, total = [0, 0], [0, 0]
        for gram, count in grams.items():
            largest, owner, second = best[gram]
            elsewhere = second if owner == i else largest
            total[len(gram) - 1] += count
            correct[len(gram) - 1] += min(count, elsewhere)
        scores.append(
            BLEU.compute_bleu(
                correct,
                total,
                hyp_len,
                ref_len,
                smooth_method=bleu.smooth_method,
                smooth_value=bleu.smooth_value,
                effective_order=True,
                max_ngram_order=2,
            ).score
        )
    return float(np.mean(scores))


def template_flags(texts: Sequence[str], n: int = 6, share: float = 0.05, minimum: int = 3) -> list[bool]:
    """Per record: does it contain a word n-gram that many other records contain too?"""
    per_record = [set(ngrams(words(t), n)) for t in texts]
    frequency = Counter(g for grams in per_record for g in grams)
    threshold = max(minimum, math.ceil(share * len(texts)))
    common = {g for g, c in frequency.items() if c >= threshold}
    return [bool(grams & common) for grams in per_record]


def template_overlap(fields: dict[str, object], min_chars: int = 40, jaccard: float = 0.5) -> bool:
    """Two long string fields of one record that say nearly the same thing."""
    texts = [set(ngrams(words(v), 3)) for v in fields.values() if isinstance(v, str) and len(v) >= min_chars]
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            union = texts[i] | texts[j]
            if union and len(texts[i] & texts[j]) / len(union) >= jaccard:
                return True
    return False


def paragraph_out_of_bounds(text: str, bounds: tuple[int, int] = PARAGRAPH_BOUNDS) -> bool:
    return not bounds[0] <= len(text) <= bounds[1]


def flatten(record: object, prefix: str = "") -> dict[str, object]:
    """Leaf values of a nested record by dotted path; list items share their list's path."""
    if isinstance(record, dict):
        out: dict[str, object] = {}
        for key, value in record.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(record, list):
        out = {}
        for i, value in enumerate(record):
            out.update(flatten(value, f"{prefix}#{i}"))
        return out
    return {prefix: record}


def populated(fields: dict[str, object]) -> int:
    return sum(1 for v in fields.values() if v not in (None, "", [], {}))


def mean_surprisal(records: Sequence[dict[str, object]]) -> float:
    """Mean -log2 share of each short value among the values its attribute takes in the corpus."""
    by_attribute: dict[str, Counter[str]] = {}
    for fields in records:
        for path, value in fields.items():
            if value in (None, "") or len(str(value)) > MAX_SURPRISAL_VALUE_CHARS:
                continue
            by_attribute.setdefault(re.sub(r"#\d+", "", path), Counter())[str(value).lower()] += 1
    total, bits = 0, 0.0
    for counts in by_attribute.values():
        n = sum(counts.values())
        for count in counts.values():
            bits += count * -math.log2(count / n)
            total += count
    return bits / total if total else 0.0


def nearest_neighbour_distance(vectors: np.ndarray) -> float:
    """Mean 1 - cosine to each row's closest other row (rows are unit vectors)."""
    if len(vectors) < 2:
        return 0.0
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    sims, ids = index.search(np.ascontiguousarray(vectors, dtype=np.float32), 2)
    own = ids[:, 0] == np.arange(len(vectors))
    nearest = np.where(own, sims[:, 1], sims[:, 0])  # identical rows may come back in either order
    return float(np.mean(1.0 - np.clip(nearest, -1.0, 1.0)))


def dispersion(vectors: np.ndarray) -> float:
    """Mean pairwise cosine distance (1 - cosine) over distinct pairs."""
    n = len(vectors)
    if n < 2:
        return 0.0
    sims = vectors @ vectors.T
    return float((n * n - sims.sum()) / (n * (n - 1)))  # the diagonal adds n * (1 - 1) = 0


def vendi_score(vectors: np.ndarray) -> float:
    """Effective number of distinct records (Friedman and Dieng, 2023) under the cosine kernel."""
    n = len(vectors)
    if n == 0:
        return 0.0
    eigenvalues = np.linalg.eigvalsh((vectors @ vectors.T) / n)
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    return float(np.exp(-np.sum(eigenvalues * np.log(eigenvalues))))


def cramers_v(counts: Mapping[str, float], separator: str = "|") -> float:
    """Cramér's V of a two-way table given as {"a|b": count}."""
    table: dict[tuple[str, str], float] = {}
    for key, count in counts.items():
        a, b = key.split(separator, 1)
        table[(a, b)] = table.get((a, b), 0.0) + count
    rows, cols = sorted({a for a, _ in table}), sorted({b for _, b in table})
    if len(rows) < 2 or len(cols) < 2:
        return 0.0
    m = np.array([[table.get((a, b), 0.0) for b in cols] for a in rows])
    n = m.sum()
    expected = m.sum(axis=1, keepdims=True) * m.sum(axis=0, keepdims=True) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = np.nansum(np.where(expected > 0, (m - expected) ** 2 / expected, 0.0))
    return float(math.sqrt(chi2 / (n * (min(len(rows), len(cols)) - 1))))
