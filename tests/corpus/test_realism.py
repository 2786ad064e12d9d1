"""Realism rates: computed from whatever fields a corpus has, n/a (None) where its fields do not allow."""

from __future__ import annotations

from corpus.evaluate_run import load_name_stats
from corpus.realism import realism_metrics

NAMES = load_name_stats()


def test_rates_for_a_corpus_with_names_sex_and_age():
    texts = [
        "Linda Hall is a 64-year-old nurse in Ohio. She walks her dog.",
        "Brittany Fox, 31, works as a cashier. I love my job.",
        "Mike Stone is a 70-year-old mechanic. <b>He</b> fixes cars; the persona is fictional.",
    ]
    records = [
        {"name": "Linda Hall", "demographics.sex": "female", "demographics.age": "64", "occupation": "nurse"},
        {"name": "Brittany Fox", "gender": "man", "age": "31", "occupation": "cashier"},
        {"name": "Mike Stone", "sex": "male", "age": "70", "occupation": "electrician"},
    ]
    rates = realism_metrics(texts, records, NAMES)
    assert rates["third_person_share"] == 2 / 3 and rates["markup_or_meta_share"] == 1 / 3
    assert rates["states_age_share"] == 1.0 and rates["states_occupation_share"] == 2 / 3
    assert rates["unique_full_names_per_1000"] == 1000.0
    assert rates["name_sex_agreement"] == 2 / 3  # Brittany recorded as a man
    # Linda born 1960 and Mike born 1954 are common names of their cohorts; Brittany (born 1993)
    # is checked against the men of her cohort, where the name is not among the common ones.
    assert rates["name_cohort_plausibility"] == 2 / 3


def test_rates_a_corpus_cannot_support_are_none_never_zero():
    rates = realism_metrics(["A retired teacher who loves birds."], [{"persona": "A retired teacher"}], NAMES)
    assert rates["third_person_share"] == 1.0
    for key in (
        "states_age_share",
        "states_occupation_share",
        "unique_full_names_per_1000",
        "name_sex_agreement",
        "name_cohort_plausibility",
    ):
        assert rates[key] is None, key
    assert realism_metrics([], [], NAMES)["third_person_share"] is None
