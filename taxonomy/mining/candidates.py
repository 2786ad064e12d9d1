"""Candidate attributes as the LLM names them, normalised into comparable labels.

A label is kept only when it reads like a general attribute ("favourite music genre"), not
like a fact about one person: no placeholders, no digits, a few lowercase words. Values are
scrubbed and kept short; they reach the taxonomy only when several conversations share them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from taxonomy.mining.scrub import PLACEHOLDER, scrub_text

KINDS = ("categorical", "numeric", "text")
MAX_LABEL_WORDS = 5
MAX_VALUE_WORDS = 4
# Words that make a label about the speaker or the sentence instead of about an attribute.
_FILLER = {
    "the",
    "a",
    "an",
    "my",
    "your",
    "his",
    "her",
    "their",
    "user",
    "users",
    "user's",
    "person",
    "person's",
    "persons",
    "speaker",
    "speaker's",
    "personal",
    "of",
    "i",
    "me",
}
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Candidate:
    conversation: str  # hashed conversation key
    category: str  # a root category id the LLM chose, or "other"
    label: str  # normalised, e.g. "favourite music genre"
    kind: str
    value: str  # normalised, may be ""


def normalise_label(raw: str) -> str | None:
    """Lowercase words without filler; None when the label is empty, too long or carries PII/digits."""
    text = scrub_text(raw)
    if PLACEHOLDER.search(text) or re.search(r"\d", text):
        return None
    text = text.replace("_", " ").replace("-", " ")
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).lower()  # camelCase from some models
    text = re.sub(r"['’]s\b", "", text)
    words = [w for w in _WORD.findall(text) if w not in _FILLER]
    if not words or len(words) > MAX_LABEL_WORDS or any(len(w) > 24 for w in words):
        return None
    return " ".join([*words[:-1], singular(words[-1])])


def singular(word: str) -> str:
    """Crude English singular of a label's head noun, so "hobbies" and "hobby" are one label."""
    if len(word) <= 3 or word.endswith(("ss", "us", "is", "ics")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("uses", "ches", "shes", "xes", "sses")):
        return word[:-2]
    return word[:-1] if word.endswith("s") else word


def normalise_value(raw: str) -> str:
    """A short scrubbed value, or "" when the value is missing, long or carries PII."""
    text = scrub_text(raw).strip()
    if PLACEHOLDER.search(text):
        return ""
    text = text.lower()
    words = _WORD.findall(text) if not re.fullmatch(r"\d{1,3}", text) else [text]
    if not words or len(words) > MAX_VALUE_WORDS:
        return ""
    return " ".join(words)


def is_grounded(value: str, sentence: str) -> bool:
    """Every content word of the value occurs in the sentence (prefix match allows plurals and tenses).

    Small models copy the prompt's example answer; a value the sentence never mentions is invented.
    """
    if not value:
        return False
    said = {w[:5] for w in _WORD.findall(sentence.lower())} | set(re.findall(r"\d+", sentence))
    words = [w for w in value.split() if w not in _FILLER]
    return bool(words) and all(w[:5] in said for w in words)


def candidate_from(conversation: str, item: dict[str, Any], categories: set[str], sentence: str) -> Candidate | None:
    """One LLM-proposed attribute as a Candidate, or None when it is malformed or not grounded in the sentence."""
    label = normalise_label(str(item.get("attribute", "")))
    value = normalise_value(str(item.get("value", "")))
    if label is None or not is_grounded(value, sentence):
        return None
    category = str(item.get("category", "other"))
    kind = str(item.get("kind", "text"))
    return Candidate(
        conversation=conversation,
        category=category if category in categories else "other",
        label=label,
        kind=kind if kind in KINDS else "text",
        value=value,
    )
