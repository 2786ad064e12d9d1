"""Does a corpus read like real people? Rates computed the same way for any corpus whose fields allow.

- third_person_share: texts with no first- or second-person pronoun (I, my, we, you, ...);
- markup_or_meta_share: texts with markup (tags, asterisks, hashes) or talk about "the persona" /
  "the narrative" / "this character";
- states_age_share, states_occupation_share: texts that contain the record's own age (the number)
  or its occupation's head word (needs an age or occupation field);
- unique_full_names_per_1000: distinct full names per 1,000 records (needs a name field);
- name_sex_agreement: records whose first name is given mostly to babies of the record's sex in
  US SSA births (1880-2015), among names the table knows (needs a name and a sex or gender field);
- name_cohort_plausibility: records whose first name is among the names covering 95% of SSA births
  of their sex in their 5-year birth cohort (needs name, sex or gender, and age).
A rate that a corpus's fields do not allow is None ("n/a"), never 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

FIRST_OR_SECOND_PERSON = re.compile(
    r"(?:^|[\s.,;:!?\"'(])(?:I|I'm|I've|I'd|I'll|me|my|mine|we|our|us|you|your)"
    r"(?=[\s.,;:!?\"')]|$)",
    re.IGNORECASE,
)
MARKUP_OR_META = re.compile(
    r"<[a-z/][^>]*>|\*\*|^#|\n#|```|\b(?:this|the) (?:persona|narrative|character profile)\b", re.IGNORECASE
)
NAME_KEYS = ("name", "full name", "full_name", "fullname")
SEX_KEYS = ("demographics.sex", "sex", "gender", "demographics.gender")
AGE_KEYS = ("demographics.age", "age")
OCCUPATION_KEYS = ("work.occupation", "occupation", "job", "profession")
SEX_VALUES = {"female": "female", "woman": "female", "f": "female", "male": "male", "man": "male", "m": "male"}


@dataclass(frozen=True)
class NameStats:
    """From the SSA table: each first name's female share of births, and the names of each sex x cohort."""

    female_share: dict[str, float]
    cohort_names: dict[tuple[str, int], frozenset[str]]
    reference_year: int
    cohort_years: int
    cohorts: tuple[int, int]


def field_of(record: dict[str, object], keys: Sequence[str]) -> str | None:
    """The first of keys present in a record (case-insensitive, also as the last part of a dotted key)."""
    lowered = {str(k).lower(): v for k, v in record.items()}
    for key in keys:
        value = lowered.get(key)
        if value is None:
            value = next((v for k, v in lowered.items() if k.rsplit(".", 1)[-1] == key), None)
        if value not in (None, ""):
            return str(value)
    return None


def rate(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def realism_metrics(
    texts: Sequence[str], records: Sequence[dict[str, object]], names: NameStats
) -> dict[str, float | None]:
    third = [not FIRST_OR_SECOND_PERSON.search(t) for t in texts]
    meta = [bool(MARKUP_OR_META.search(t)) for t in texts]
    ages, occupations, full_names, sex_agrees, cohort_ok = [], [], [], [], []
    for text, record in zip(texts, records, strict=True):
        age, occupation = field_of(record, AGE_KEYS), field_of(record, OCCUPATION_KEYS)
        name, sex = field_of(record, NAME_KEYS), SEX_VALUES.get((field_of(record, SEX_KEYS) or "").lower())
        if age and age.isdigit():
            ages.append(re.search(rf"\b{age}\b", text) is not None)
        if occupation:
            occupations.append(occupation.split()[-1].lower() in text.lower())
        if not name:
            continue
        full_names.append(name.strip().lower())
        first = name.strip().split(" ")[0].title()
        if sex and first in names.female_share:
            sex_agrees.append((names.female_share[first] >= 0.5) == (sex == "female"))
        if sex and age and age.isdigit():
            born = names.reference_year - int(age)
            cohort = min(max(born // names.cohort_years * names.cohort_years, names.cohorts[0]), names.cohorts[1])
            cohort_ok.append(first in names.cohort_names.get((sex, cohort), frozenset()))
    return {
        "third_person_share": rate(third),
        "markup_or_meta_share": rate(meta),
        "states_age_share": rate(ages),
        "states_occupation_share": rate(occupations),
        "unique_full_names_per_1000": 1000 * len(set(full_names)) / len(full_names) if full_names else None,
        "name_sex_agreement": rate(sex_agrees),
        "name_cohort_plausibility": rate(cohort_ok),
    }
