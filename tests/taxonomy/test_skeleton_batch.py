"""Columnar skeleton codes back to strings: absent rows are null, numbers are whole."""

from __future__ import annotations

import numpy as np

from taxonomy.loader import load_taxonomy
from taxonomy.skeleton_batch import domain_of, present_mask, value_strings


def test_codes_and_numbers_become_strings_with_nulls_where_absent():
    attributes = load_taxonomy("seed:core").attributes()
    sex = attributes["demographics.sex"]
    codes = np.array([0, -1, len(domain_of(sex)) - 1], dtype=np.int32)
    assert value_strings(sex, codes).to_pylist() == [domain_of(sex)[0], None, domain_of(sex)[-1]]
    age = attributes["demographics.age"]
    assert value_strings(age, np.array([34.0, np.nan, 71.0])).to_pylist() == ["34", None, "71"]
    assert present_mask(codes).tolist() == [True, False, True]
    assert present_mask(np.array([1.5, np.nan])).tolist() == [True, False]
