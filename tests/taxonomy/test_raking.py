"""Raking (iterative proportional fitting) meets every margin, keeps structural zeros and refuses the impossible."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.errors import UserInputError
from taxonomy.raking import MarginTarget, rake


def test_the_raked_table_meets_both_margins_and_sums_to_one():
    seed = np.array([[1.0, 2.0, 1.0], [3.0, 1.0, 2.0]])
    rows = MarginTarget((0,), np.array([0.3, 0.7]), "sex")
    cols = MarginTarget((1,), np.array([0.2, 0.5, 0.3]), "age")
    fitted = rake(seed, [rows, cols])
    assert fitted.sum() == pytest.approx(1.0)
    assert fitted.sum(axis=1) == pytest.approx(rows.shares, abs=1e-9)
    assert fitted.sum(axis=0) == pytest.approx(cols.shares, abs=1e-9)
    # Raking keeps the seed's interactions: the odds ratio of any 2x2 block is unchanged.
    odds = lambda t: (t[0, 0] * t[1, 1]) / (t[0, 1] * t[1, 0])  # noqa: E731
    assert odds(fitted) == pytest.approx(odds(seed))


def test_a_joint_margin_over_two_of_three_axes_is_met():
    seed = np.ones((2, 2, 3))
    pair = MarginTarget((0, 2), np.array([[0.1, 0.2, 0.1], [0.3, 0.2, 0.1]]), "sex x age")
    fitted = rake(seed, [pair, MarginTarget((1,), np.array([0.4, 0.6]), "region")])
    assert fitted.sum(axis=1) == pytest.approx(pair.shares, abs=1e-9)
    assert fitted.sum(axis=(0, 2)) == pytest.approx([0.4, 0.6], abs=1e-9)


def test_structural_zeros_stay_zero():
    seed = np.array([[1.0, 0.0], [1.0, 1.0]])
    fitted = rake(seed, [MarginTarget((0,), np.array([0.5, 0.5]), "a"), MarginTarget((1,), np.array([0.6, 0.4]), "b")])
    assert fitted[0, 1] == 0.0
    assert fitted.sum(axis=0) == pytest.approx([0.6, 0.4], abs=1e-9)


def test_a_target_the_seed_cannot_reach_is_refused_with_its_name():
    seed = np.array([[1.0, 0.0], [1.0, 0.0]])
    with pytest.raises(UserInputError, match="employment") as caught:
        rake(seed, [MarginTarget((1,), np.array([0.5, 0.5]), "employment")])
    assert "(1,)" in str(caught.value)
    with pytest.raises(UserInputError, match="no positive weight"):
        rake(np.zeros((2, 2)), [])
