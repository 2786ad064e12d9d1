"""Near-duplicates planted into real persona texts from ../shared/data, shared by the benchmarks."""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PROFILES = SHARED / "persona_statements" / "personachat_via_spc.jsonl"
SYNONYMS = {
    "love": "adore",
    "like": "enjoy",
    "big": "large",
    "small": "little",
    "job": "work",
    "work": "job",
    "happy": "glad",
    "car": "automobile",
    "dog": "puppy",
    "house": "home",
    "home": "house",
    "friends": "pals",
    "children": "kids",
    "kids": "children",
    "mother": "mom",
    "father": "dad",
    "favorite": "preferred",
    "enjoy": "like",
    "live": "reside",
    "play": "practice",
    "read": "peruse",
    "movies": "films",
    "music": "songs",
    "food": "meals",
    "school": "college",
    "beautiful": "pretty",
}


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
    scores = [
        len(word_sets[index] & other) / len(word_sets[index] | other) if j != index else -1.0
        for j, other in enumerate(word_sets)
    ]
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
        splice = " ".join(own[: len(own) // 2] + foreign[len(foreign) // 2 :])
        for negative in (other, bases[lexical_neighbour(i, word_sets)], splice):
            pairs.append((base, negative))
            labels.append(0)
    return pairs, np.asarray(labels)
