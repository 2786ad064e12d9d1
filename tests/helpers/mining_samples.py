"""Conversation samples the mining tests share: the shipped files and planted PII."""

from __future__ import annotations

from tests.helpers.paths import REPO

SHIPPED = [REPO / "data" / "conversations" / "wildchat.jsonl", REPO / "data" / "conversations" / "oasst1.jsonl"]

# Each planted string must be replaced; the fragment after it must not survive either.
PLANTED = {
    "jane.roe@example.org": "EMAIL",
    "+1 (415) 555-0199": "PHONE",
    "https://example.com/u/jroe?token=abc123": "URL",
    "742 Evergreen Terrace": "ADDRESS",
    "4111 1111 1111 1111": "CARD",
    "123-45-6789": "ID",
    "Jonathan Quixote": "NAME",
    "DE89 3704 0044 0532 0130 00": "ID",
    "10.21.7.144": "IP",
    "@jroe_1987": "HANDLE",
}
PLANTED_TEXT = (
    "Hi, my name is Jonathan Quixote and I'm a nurse. Email me at jane.roe@example.org or call "
    "+1 (415) 555-0199. I live at 742 Evergreen Terrace. My card is 4111 1111 1111 1111 and my SSN "
    "123-45-6789, IBAN DE89 3704 0044 0532 0130 00. Profile: https://example.com/u/jroe?token=abc123 "
    "from 10.21.7.144, twitter @jroe_1987."
)
