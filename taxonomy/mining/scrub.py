"""PII scrubbing: the first thing mining does to any text, and the last thing it does to LLM output.

Each detector replaces what it finds with a typed placeholder ([EMAIL], [PHONE], ...). The
order matters: URLs and emails go before numbers so their digits are not half-matched, cards
(Luhn-valid) before generic ID numbers. Names are caught where a cue says a name follows
("my name is", "Dear", titles, sign-offs); free-standing names without a cue are not
detectable without a model, so no raw text is ever written out, only attribute labels that
were seen in several conversations.
"""

from __future__ import annotations

import re
from collections import Counter

PLACEHOLDER = re.compile(r"\[(EMAIL|URL|PHONE|CARD|ID|ADDRESS|POSTCODE|IP|NAME|HANDLE)\]")

_NAME = r"[A-Z][a-zA-Z'\-]+(?:\s+[A-Z][a-zA-Z'\-]+){0,2}"
_STREET_SUFFIX = (
    r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
    r"terrace|parkway|pkwy|highway|hwy|square|sq|crescent|close|strasse|straße|rue)"
)

# (placeholder, pattern, group to replace: 0 = whole match)
_DETECTORS: list[tuple[str, re.Pattern[str], int]] = [
    ("URL", re.compile(r"\b(?:https?://|www\.)[^\s<>\"')\]]+", re.IGNORECASE), 0),
    ("EMAIL", re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b"), 0),
    ("IP", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), 0),
    ("ID", re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), 0),  # US social security number shape
    ("ID", re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,7}(?:\s?[A-Z0-9]{1,4})?\b"), 0),  # IBAN
    (
        "ADDRESS",
        re.compile(rf"\b\d{{1,6}}[A-Za-z]?\s+(?:[A-Za-z][a-z'\-]+\s+){{1,4}}{_STREET_SUFFIX}\b\.?", re.IGNORECASE),
        0,
    ),
    ("POSTCODE", re.compile(r"\b[A-Z]{2}\s+\d{5}(?:-\d{4})?\b|\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b"), 0),
    ("HANDLE", re.compile(r"(?<![\w.])@[A-Za-z0-9_]{3,30}\b"), 0),
    # After an explicit cue any word is a name, capitalised or not ("my name praba").
    (
        "NAME",
        re.compile(
            r"\b(?i:my name(?: is|'s)?|i am called|i'm called|call me|name:)\s+"
            r"([A-Za-z][A-Za-z'\-]+(?:\s+[A-Z][a-zA-Z'\-]+){0,2})"
        ),
        1,
    ),
    ("NAME", re.compile(rf"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Madam)\.?\s+({_NAME})"), 1),
    ("NAME", re.compile(rf"(?i:\bdear|\bhi|\bhello)\s+({_NAME})\s*[,!]"), 1),
    (
        "NAME",
        re.compile(
            rf"(?i:regards|sincerely|thanks|thank you|cheers|best|yours),?[ \t]*\n+"
            rf"[ \t]*({_NAME})[.!]?[ \t]*$",
            re.MULTILINE,
        ),
        1,
    ),
    ("NAME", re.compile(r"\bNAME_\d+\b"), 0),  # LMSYS's own redaction placeholders
]
# Digit runs: a phone, a card or some other identifying number. Decided by digit count and Luhn.
_DIGIT_RUN = re.compile(r"(?<![\w\[])\+?\(?\d[\d\s().\-]{5,}\d\b")


def scrub_text(text: str, counts: Counter[str] | None = None) -> str:
    """The text with every detected PII span replaced by its placeholder; counts[kind] is incremented."""
    counts = counts if counts is not None else Counter()
    for kind, pattern, group in _DETECTORS:
        text = _replace(text, pattern, group, f"[{kind}]", kind, counts)
    return _DIGIT_RUN.sub(lambda m: _classify_digits(m.group(0), counts), text)


def _replace(text: str, pattern: re.Pattern[str], group: int, placeholder: str, kind: str, counts: Counter[str]) -> str:
    def swap(match: re.Match[str]) -> str:
        counts[kind] += 1
        whole = match.group(0)
        if group == 0:
            return placeholder
        start, end = match.start(group) - match.start(0), match.end(group) - match.start(0)
        return whole[:start] + placeholder + whole[end:]

    return pattern.sub(swap, text)


def _classify_digits(span: str, counts: Counter[str]) -> str:
    digits = re.sub(r"\D", "", span)
    if len(digits) < 7:
        return span  # years, prices, small counts: not identifying
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        kind = "CARD"
    elif 7 <= len(digits) <= 15 and re.search(r"[\s().\-+]", span):
        kind = "PHONE"
    else:
        kind = "ID"
    counts[kind] += 1
    return f"[{kind}]"


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0
