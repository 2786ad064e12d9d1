"""The schema that holds a continuation to open with the person's pronoun and a verb that agrees with it."""

import re

import pytest

from tests.helpers.skeletons import skeleton
from workers.proposer import continuation_schema


def narrative_pattern(gender: str) -> re.Pattern[str]:
    schema = continuation_schema(skeleton(**{"demographics.gender": gender}))
    return re.compile(schema["properties"]["narrative"]["pattern"])


@pytest.mark.parametrize(
    ("gender", "agrees", "disagrees"),
    [
        ("woman", "She lives by the river and works nights.", "She live by the river."),
        ("man", "He has two dogs and studies at night.", "He have two dogs."),
        ("non-binary", "They live by the river and study at night.", "They lives by the river."),
    ],
)
def test_the_opening_verb_agrees_with_the_pronoun(gender, agrees, disagrees):
    pattern = narrative_pattern(gender)
    assert pattern.match(agrees)
    assert not pattern.match(disagrees)


def test_tenses_and_adverbs_that_fit_every_pronoun_open_every_narrative():
    for gender, subject in (("woman", "She"), ("man", "He"), ("non-binary", "They")):
        pattern = narrative_pattern(gender)
        assert pattern.match(f"{subject} grew up on a farm.") and pattern.match(f"{subject} often cooks for friends.")
        assert not pattern.match(f"{subject} is a nurse.")  # a restated opening is what the verbs keep out
