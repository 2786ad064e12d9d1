"""The opening sentence of every portrait, written by code from the facts.

A small model asked to state the facts gets them wrong often; asked to continue a sentence that
already states them, it only has to stay consistent. So the sampled name, age, occupation (or
what the person does instead) and state open the narrative verbatim, in the third person.
"""

from __future__ import annotations

from taxonomy.model import AGE_ID, EMPLOYMENT_ID, GENDER_ID, OCCUPATION_ID, REGION_ID, STATE_ID

# What someone without an occupation fact is, by employment status.
STATUS_NOUNS = {"retired": "retiree", "student": "student", "homemaker": "homemaker"}
PERSON_NOUNS = {"woman": "woman", "man": "man"}
PRONOUNS = {"woman": ("she", "her"), "man": ("he", "his")}


def article_for(word: str) -> str:
    """'an' before a vowel sound, including the spoken numbers 8, 11, 18 and 80-89."""
    head = word.split("-")[0]
    if head.isdigit():
        return "an" if head in ("8", "11", "18") or head.startswith("8") else "a"
    return "an" if head[:1].lower() in "aeiou" else "a"


def write_opening(name: str, facts: dict[str, str]) -> str:
    """'Joann Jackson is a 76-year-old retiree in Colorado.' from whatever of those facts exist."""
    age = facts.get(AGE_ID)
    gender = facts.get(GENDER_ID)
    occupation = facts.get(OCCUPATION_ID)
    status = facts.get(EMPLOYMENT_ID)
    noun = occupation or STATUS_NOUNS.get(status or "") or PERSON_NOUNS.get(gender or "", "person")
    described = f"{age}-year-old {noun}" if age else noun
    place = facts.get(STATE_ID) or (f"the {facts[REGION_ID]}" if facts.get(REGION_ID) else None)
    sentence = f"{name or 'This person'} is {article_for(described)} {described}"
    if status == "unemployed" and not occupation:
        sentence += " looking for work"
    return sentence + (f" in {place}." if place else ".")


def pronouns_for(facts: dict[str, str]) -> tuple[str, str]:
    """(subject, possessive) pronouns for the person: she/her, he/his, or they/their."""
    return PRONOUNS.get(facts.get(GENDER_ID) or "", ("they", "their"))
