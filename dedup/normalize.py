"""Text normalisation and shingling shared by the exact and fuzzy layers."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from schemas.config import ShingleConfig

_NON_WORD = re.compile(r"[^\w]+")
_WORD = re.compile(r"\w+")


def normalize_text(text: str) -> str:
    """Case-, Unicode-form- and punctuation-insensitive form of a text."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_NON_WORD.sub(" ", text).split())


TEXT_HASH_CHARS = 64  # a SHA-256 hex digest


def text_hash(text: str) -> str:
    return hashlib.sha256(normalize_text(text).encode()).hexdigest()


def words_of(text: str) -> list[str]:
    """The words of normalize_text(text), in one pass."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def word_shingles(text: str, n: int) -> set[str]:
    words = words_of(text)
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def char_shingles(text: str, n: int) -> set[str]:
    norm = normalize_text(text)
    if len(norm) < n:
        return {norm} if norm else set()
    return {norm[i : i + n] for i in range(len(norm) - n + 1)}


def shingles(text: str, cfg: ShingleConfig) -> set[str]:
    return word_shingles(text, cfg.size) if cfg.unit == "word" else char_shingles(text, cfg.size)
