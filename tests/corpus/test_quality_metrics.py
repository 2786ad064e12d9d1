"""Corpus quality metrics on small hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from corpus.evaluation import CorpusSample, evaluate_sample, hard_errors
from corpus.quality_metrics import (
    char_distinct_n,
    cramers_v,
    dispersion,
    distinct_n,
    flatten,
    mean_surprisal,
    nearest_neighbour_distance,
    paragraph_out_of_bounds,
    populated,
    self_bleu2,
    template_flags,
    template_overlap,
    vendi_score,
)


def test_distinct_n_counts_unique_word_ngrams_over_the_corpus():
    assert distinct_n(["a b a b"], 1) == 0.5  # {a, b} of 4
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # ab, ba, ab
    assert distinct_n(["A b", "a B"], 2) == 0.5  # lowercased: the same bigram twice
    assert distinct_n([], 3) == 0.0


def test_char_distinct_is_per_record_then_averaged():
    assert char_distinct_n(["aaaa", "abab"], 2) == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert char_distinct_n(["a"], 2) == 0.0


def test_self_bleu2_is_100_for_copies_and_0_for_disjoint_texts():
    assert self_bleu2(["the cat sat on the mat"] * 3) == pytest.approx(100.0)
    assert self_bleu2(["alpha beta gamma delta", "one two three four"]) == pytest.approx(0.0, abs=1e-6)
    assert self_bleu2(["only one"]) == 0.0


def test_self_bleu2_equals_sacrebleus_sentence_bleu_against_all_the_others():
    """Counting each text once gives sacrebleu's own per-sentence scores (ties, repeats, lengths)."""
    from sacrebleu.metrics import BLEU

    texts = [
        "The cat sat on the mat.",
        "the cat sat on a mat",
        "A dog ran in the park, and the cat sat.",
        "The cat sat on the mat.",
        "Nothing in common here!",
        "mat mat mat the the",
        "Short.",
        "She keeps a small garden behind the house and trades seedlings every spring.",
    ]
    bleu = BLEU(max_ngram_order=2, effective_order=True)
    expected = np.mean([bleu.sentence_score(t, texts[:i] + texts[i + 1 :]).score for i, t in enumerate(texts)])
    assert self_bleu2(texts) == pytest.approx(expected, abs=1e-9)


def test_template_flags_mark_records_sharing_a_common_six_gram():
    shared = "she is a nurse who loves"
    texts = [f"{shared} gardens {i}" for i in range(3)] + [f"unique words number {i} here and there" for i in range(7)]
    assert template_flags(texts) == [True] * 3 + [False] * 7
    assert template_flags(texts[:2] + texts[3:]) == [False] * 9  # two copies: below the minimum of 3


def test_template_overlap_between_long_fields_of_one_record():
    text = "Dana works nights at the clinic and grows tomatoes for the whole street every summer."
    assert template_overlap({"background": text, "personality": text + " Truly."})
    assert not template_overlap(
        {"background": text, "personality": "Quiet, careful and fond of long walks by the river with her old dog."}
    )
    assert not template_overlap({"a": "short", "b": "short"})


def test_paragraph_bounds_are_80_to_800_inclusive():
    assert paragraph_out_of_bounds("x" * 79) and paragraph_out_of_bounds("x" * 801)
    assert not paragraph_out_of_bounds("x" * 80) and not paragraph_out_of_bounds("x" * 800)


def test_flatten_and_populated():
    fields = flatten({"a": {"b": 1, "c": [{"d": "x"}, "y"]}, "e": None, "f": ""})
    assert fields == {"a.b": 1, "a.c#0.d": "x", "a.c#1": "y", "e": None, "f": ""}
    assert populated(fields) == 3


def test_mean_surprisal_in_bits():
    assert mean_surprisal([{"g": "a"}, {"g": "a"}, {"g": "b"}, {"g": "b"}]) == pytest.approx(1.0)
    assert mean_surprisal([{"g": "a"}] * 4) == 0.0
    # 3 of one value and 1 of another: (3 * log2(4/3) + 1 * log2(4)) / 4
    assert mean_surprisal([{"g": "a"}] * 3 + [{"g": "b"}]) == pytest.approx((3 * math.log2(4 / 3) + 2) / 4)
    assert mean_surprisal([{"long": "x" * 41}]) == 0.0  # long free text is not a value


def test_embedding_metrics_on_unit_vectors():
    e1, e2, e3 = np.eye(3, dtype=np.float32)
    assert nearest_neighbour_distance(np.stack([e1, e1, e2])) == pytest.approx(1 / 3)
    assert dispersion(np.stack([e1, e2])) == pytest.approx(1.0)
    assert dispersion(np.stack([e1, e1])) == pytest.approx(0.0)
    assert vendi_score(np.stack([e1, e2, e3])) == pytest.approx(3.0)
    assert vendi_score(np.stack([e1, e1, e1])) == pytest.approx(1.0)


def test_cramers_v():
    assert cramers_v({"a|x": 10, "b|y": 10}) == pytest.approx(1.0)
    assert cramers_v({"a|x": 5, "a|y": 5, "b|x": 5, "b|y": 5}) == pytest.approx(0.0)
    assert cramers_v({"a|x": 3}) == 0.0


def test_hard_errors_and_the_evaluated_row():
    sample = CorpusSample(
        "toy",
        texts=["Dana Reyes nurses at night and grows tomatoes for the whole street in summer time.", "x"],
        records=[{"name": "Dana Reyes", "gender": "woman"}, {"name": "", "gender": "robot"}],
        required=("name",),
        enums={"gender": {"woman", "man"}},
    )
    assert hard_errors(sample) == [False, True]
    row = evaluate_sample(sample, lambda texts: np.eye(len(texts), 4, dtype=np.float32), {"cosine_0.9": 0.0})
    assert row["records"] == 2 and row["hard_error_rate"] == 0.5
    assert row["paragraph_length_out_of_80_800"] == 0.5 and row["warning_rate"] == 0.5
    assert row["attributes_per_record"] == 1.5 and row["duplicates_cosine_0.9"] == 0.0
    assert row["nearest_neighbour_distance"] == pytest.approx(1.0) and row["vendi_score"] == pytest.approx(2.0)
    uncontracted = CorpusSample("ref", texts=sample.texts, records=sample.records)
    assert (
        evaluate_sample(uncontracted, lambda texts: np.eye(len(texts), 4, dtype=np.float32), {})["hard_error_rate"]
        is None
    )  # nothing declared, nothing to break: n/a
