"""Fidelity: the prose must not contradict the skeleton's age, occupation, place, gender or traits."""

from __future__ import annotations

import functools
import re
from collections.abc import Collection

# An age is a number of one to three digits; each is tested against the four ways prose gives a
# person's age: "62-year-old", "aged 62" (or "age of 62"), "62, is a ..." and "Marie, 62, ...".
# One scan for numbers and anchored tests around each, not a scan of the text per pattern.
NUMBER = re.compile(r"\b\d{1,3}\b")
YEARS_OLD_AFTER = re.compile(r"[- ]years?[- ]old\b", re.IGNORECASE)
AGED_BEFORE = re.compile(r"\baged? (?:of )?$", re.IGNORECASE)
IS_A_AFTER = re.compile(r",? (?:is|was) (?:a|an|the)\b", re.IGNORECASE)
NAME_COMMA_BEFORE = re.compile(r"\b[A-Z][a-z]+, $")
# Present tense only: "worked as a nurse" is history, "works as a nurse" is a claim about now.
JOB_CLAIM = re.compile(
    r"\b(?:works|is working|currently works|is employed|makes a living) as (?:an? |the )?([a-z][a-z -]{1,40}?)"
    r"(?=[,.;:!]| at | in | for | and | who | with |$)",
    re.IGNORECASE,
)


STATE_REGIONS = {
    "Northeast": [
        "Connecticut",
        "Maine",
        "Massachusetts",
        "New Hampshire",
        "Rhode Island",
        "Vermont",
        "New Jersey",
        "New York",
        "Pennsylvania",
    ],
    "Midwest": [
        "Illinois",
        "Indiana",
        "Michigan",
        "Ohio",
        "Wisconsin",
        "Iowa",
        "Kansas",
        "Minnesota",
        "Missouri",
        "Nebraska",
        "North Dakota",
        "South Dakota",
    ],
    "South": [
        "Delaware",
        "Florida",
        "Georgia",
        "Maryland",
        "North Carolina",
        "South Carolina",
        "Virginia",
        "West Virginia",
        "Alabama",
        "Kentucky",
        "Mississippi",
        "Tennessee",
        "Arkansas",
        "Louisiana",
        "Oklahoma",
        "Texas",
    ],
    "West": [
        "Arizona",
        "Colorado",
        "Idaho",
        "Montana",
        "Nevada",
        "New Mexico",
        "Utah",
        "Wyoming",
        "Alaska",
        "California",
        "Hawaii",
        "Oregon",
        "Washington",
    ],
}
REGION_OF_STATE = {state: region for region, states in STATE_REGIONS.items() for state in states}
# "New York" would also match inside "New York City", which is in the Northeast all the same.
STATE_NAMES = "|".join(sorted(map(re.escape, REGION_OF_STATE), key=len, reverse=True))
STATE_PATTERN = re.compile(rf"\b({STATE_NAMES})\b")
# Words that contradict a trait level: (trait, level) -> words the prose must not use for the person.
TRAIT_CONTRADICTIONS = {
    ("personality.extraversion", "high"): ["introvert", "introverted", "shy", "withdrawn", "loner"],
    ("personality.extraversion", "low"): ["extrovert", "extroverted", "outgoing", "life of the party"],
    ("personality.conscientiousness", "low"): ["meticulous", "highly organized", "perfectionist"],
    ("personality.conscientiousness", "high"): ["disorganized", "careless", "lazy"],
    ("personality.agreeableness", "low"): ["kind-hearted", "warm-hearted", "always agreeable"],
    ("personality.neuroticism", "low"): ["anxious", "neurotic", "easily stressed"],
    ("personality.neuroticism", "high"): ["calm under pressure", "never worries", "unflappable"],
}


# A claim about where the person lives now (not where they grew up or travel to).
RESIDENCE = re.compile(
    r"\b(?:lives|living|resides|residing|is based|based|settled|calls home|home) in "
    rf"(?:[A-Z][a-z]+(?: [A-Z][a-z]+)*, )?({STATE_NAMES})\b"
)
# He-words in group 1, she-words in group 2: both counted in one pass.
PRONOUNS = re.compile(r"\b(?:(he|him|his|himself)|(she|her|hers|herself))\b", re.IGNORECASE)
SELF_NOUNS = {
    "man": r"man|gentleman|guy|father of|husband to|grandfather|businessman",
    "woman": r"woman|lady|mother of|wife to|grandmother|businesswoman",
}


def find_place_contradiction(text: str, region: str | None, state: str | None = None) -> str | None:
    """A residence in another state than the sampled one, or any US state outside the sampled region."""
    if state:
        for match in RESIDENCE.finditer(text):
            if match.group(1) != state:
                return (
                    f"The narrative says the person lives in {match.group(1)}, but they live in {state}; "
                    f"place them in {state} or name no state."
                )
    if not region:
        return None
    for match in STATE_PATTERN.finditer(text):
        if REGION_OF_STATE[match.group(1)] != region:
            return (
                f"The narrative places the person in {match.group(1)}, but they live in the {region}; "
                f"pick a place in the {region} or none."
            )
    return None


# "is a gentleman" for a woman; and the words that show she is one all the same.
CALLED_A = {
    gender: re.compile(rf"\b(?:is|as) an? (?:\w+ )?({nouns})\b", re.IGNORECASE) for gender, nouns in SELF_NOUNS.items()
}
SELF_NOUN = {gender: re.compile(rf"\b(?:{nouns})\b", re.IGNORECASE) for gender, nouns in SELF_NOUNS.items()}


def find_gender_contradiction(text: str, gender: str | None) -> str | None:
    """The prose refers to a woman as he (or a man as she) more than the other way, or calls them the other."""
    if gender not in SELF_NOUNS:
        return None
    other = "woman" if gender == "man" else "man"
    found = PRONOUNS.findall(text)
    his = sum(1 for he, _ in found if he)
    right, wrong = (his, len(found) - his) if gender == "man" else (len(found) - his, his)
    if wrong >= 2 and wrong > right:
        pronouns = "he/him/his" if other == "man" else "she/her"
        fix = "she/her" if gender == "woman" else "he/him/his"
        return f"The narrative calls the person {pronouns}, but they are a {gender}; use {fix}."
    noun = CALLED_A[other].search(text)
    if noun and not SELF_NOUN[gender].search(text):
        return f"The narrative calls the person a {noun.group(1)}, but they are a {gender}."
    return None


# Compiled once: a pattern per word, tried in the order above, behind one pattern for any of them
# (nearly every narrative has none of the words: one search instead of one per word).
TRAIT_WORD_PATTERNS = {
    key: (
        re.compile(rf"\b(?:{'|'.join(map(re.escape, words))})\b"),
        [(word, re.compile(rf"\b{re.escape(word)}\b")) for word in words],
    )
    for key, words in TRAIT_CONTRADICTIONS.items()
}


def find_trait_contradiction(text: str, attributes: dict[str, str]) -> str | None:
    lowered = text.lower()
    for (trait, level), (any_word, words) in TRAIT_WORD_PATTERNS.items():
        if attributes.get(trait) != level or not any_word.search(lowered):
            continue
        for word, pattern in words:
            if pattern.search(lowered):
                label = trait.split(".")[-1]
                return f"The narrative calls the person {word}, but their {label} is {level}; describe them to match."
    return None


# An age followed by one of these, or after a possessive, belongs to someone else ("her 8-year-old son").
OTHER_PEOPLE = re.compile(
    r"\s*(?:son|sons|daughter|daughters|child|children|kid|kids|boy|girl|baby|grandson|granddaughter|grandchild"
    r"|grandchildren|twins?|nephew|niece|brother|sister|sibling|mother|father|mom|dad|husband|wife|partner"
    r"|friend|neighbou?r|student|students|patient|patients|dog|cat|puppy|kitten|horse|car|truck|house|home)\b",
    re.IGNORECASE,
)
# Characters before an age that the possessive and relation patterns can span.
LOOK_BACK = 120
POSSESSIVE_BEFORE = re.compile(r"\b(?:her|his|their|my|whose)\s+(?:[a-z]+\s+)?$", re.IGNORECASE)
RELATION_BEFORE = re.compile(
    r"\b(?:son|daughter|child|grandson|granddaughter|nephew|niece|brother|sister|friend"
    r"|husband|wife|partner|mother|father),?\s+(?:[A-Z][a-z]+,?\s+)?(?:aged?\s+)?$"
)


def ends_before(pattern: re.Pattern[str], text: str, end: int) -> bool:
    """Whether `pattern` (anchored with $) matches text just before `end`. Searched over a window, not
    the whole text before it (which made long narratives quadratic); pos/endpos keep \\b and $ exact."""
    return pattern.search(text, max(0, end - LOOK_BACK), end) is not None


def stated_ages(text: str, first_name: str | None = None) -> set[int]:
    """Ages the prose gives the person, not the ones it gives their son, dog or neighbour."""
    ages = set()
    for number in NUMBER.finditer(text):
        start, end = number.span()
        if ends_before(RELATION_BEFORE, text, start):
            continue  # "her son, 8," or "his daughter aged 8"
        years_old = YEARS_OLD_AFTER.match(text, end)
        if years_old and not (OTHER_PEOPLE.match(text, years_old.end()) or ends_before(POSSESSIVE_BEFORE, text, start)):
            ages.add(int(number.group()))
            continue
        if ends_before(AGED_BEFORE, text, start) or IS_A_AFTER.match(text, end):
            ages.add(int(number.group()))
            continue
        named = NAME_COMMA_BEFORE.search(text, max(0, start - LOOK_BACK), start)
        if named and text.startswith(",", end) and not (first_name and not text.startswith(first_name, named.start())):
            ages.add(int(number.group()))  # "Tom, 8," is someone else when the person is Marie
    return ages


def find_unreflected_facts(text: str, age: str | None, occupation: str | None) -> str | None:
    """The important facts should show in the prose: the age, and the occupation if any."""
    lowered = text.lower()
    missing = []
    if age and age not in text:
        missing.append(f"the age ({age})")
    if occupation and occupation.split()[-1].lower() not in lowered:
        missing.append(f"the occupation ({occupation})")
    if missing:
        return f"The narrative never mentions {' or '.join(missing)}; work it in naturally."
    return None


def find_age_contradiction(text: str, age: str | None, first_name: str | None = None) -> str | None:
    if not age:
        return None
    wrong = sorted(a for a in stated_ages(text, first_name) if a != int(age))
    if wrong:
        return f"The narrative states age {wrong[0]}, but the person is {age}; use {age} or no number."
    return None


def _same_job(claimed: str, occupation: str) -> bool:
    claimed, occupation = claimed.lower().strip(), occupation.lower()
    return occupation in claimed or claimed in occupation or claimed.split()[-1] == occupation.split()[-1]


def find_occupation_contradiction(text: str, occupation: str | None, known_occupations: Collection[str]) -> str | None:
    """A present-tense job claim that differs from the skeleton, or a job for someone without one."""
    for match in JOB_CLAIM.finditer(text):
        claimed = match.group(1).strip()
        if occupation is None:
            return (
                f"The narrative says the person works as a {claimed}, but they have no job; "
                "describe what they do instead of work."
            )
        if not _same_job(claimed, occupation):
            return f"The narrative says '{match.group(0).strip()}', but the person is a {occupation}."
    if occupation:
        lowered = text.lower()
        if occupation.lower() in lowered:
            return None
        for match in occupation_pattern(frozenset(known_occupations)).finditer(lowered):
            if match.group(1) != occupation:
                return f"The narrative calls the person a {match.group(1)}, but they are a {occupation}."
    return None


@functools.lru_cache(maxsize=8)
def occupation_pattern(known_occupations: frozenset[str]) -> re.Pattern[str]:
    """'is a nurse' or 'as an electrician' for any known occupation, longest first ('nurse practitioner'
    before 'nurse'). Cached: frozenset() of a frozenset is the same object, so a caller passing one pays nothing."""
    names = "|".join(re.escape(o) for o in sorted(known_occupations, key=len, reverse=True))
    return re.compile(rf"\b(?:is|as) an? ({names})\b")


SENTENCE_SUBJECT = re.compile(
    r"(?:^|[.!?]\s+)([A-Z][a-z]+)\s+(?:is|was|has|works|lives|loves|enjoys|spends|likes|"
    r"starts|begins|wakes|runs|finds|keeps|takes|cares|values|hopes|wants)\b"
)
NAMED = re.compile(
    r"\b(?:(?:[Hh]er|[Hh]is|[Tt]heir) (?:first )?name is|(?:[Ss]he|[Hh]e|[Tt]hey) (?:goes|go) by"
    r"|(?:[Ss]he|[Hh]e|[Tt]hey) (?:is|are) called)\s+([A-Z][a-z]+)"
)


def find_name_contradiction(continuation: str, name: str, known_first_names: frozenset[str]) -> str | None:
    """The continuation calls the person by another first name ("Sarah loves ..." when she is Marie)."""
    if not name:
        return None
    first = name.split(" ")[0]
    opening = SENTENCE_SUBJECT.match(continuation.strip())
    candidates = [opening.group(1)] if opening else []
    if "name is" in continuation or " by" in continuation or "called" in continuation:  # NAMED needs one
        candidates += [m.group(1) for m in NAMED.finditer(continuation)]
    for other in candidates:
        if other != first and other in known_first_names and other not in name.split(" "):
            return f"The narrative calls the person {other}, but their name is {name}; call them {first}."
    return None
