"""Text normalisation and shingling shared by the exact and fuzzy layers."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_NON_WORD = re.compile(r"[^\w]+")


def normalize_text(text: str) -> str:
    """Case-, accent-form- and punctuation-insensitive form of a text."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_NON_WORD.sub(" ", text).split())


def text_hash(text: str) -> str:
    return hashlib.sha256(normalize_text(text).encode()).hexdigest()


def word_shingles(text: str, n: int) -> set[str]:
    words = normalize_text(text).split()
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}
