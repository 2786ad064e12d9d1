"""Names drawn from the shipped SSA and Census tables: by sex and birth cohort, leaning to race/ethnicity."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from taxonomy.names import NAMES_DIR, REFERENCE_YEAR, draw_names, load_name_tables


def cohort_table(sex: str, cohort: int) -> dict[str, float]:
    table = pq.read_table(NAMES_DIR / "first_names.parquet").to_pandas()
    rows = table[(table.sex == sex) & (table.cohort == cohort)]
    return dict(zip(rows.name, rows.births / rows.births.sum(), strict=True))


def test_first_names_follow_the_ssa_births_of_the_sex_and_cohort():
    n = 40_000
    age = REFERENCE_YEAR - 1962  # born 1962: the 1960-1964 cohort
    for sex in ("female", "male"):
        first, _ = draw_names(3, np.arange(n), np.full(n, sex), np.full(n, age), np.full(n, "white"))
        expected = cohort_table(sex, 1960)
        assert set(first) <= set(expected)
        drawn = {name: count / n for name, count in zip(*np.unique(first, return_counts=True), strict=True)}
        # Reweighting by race moves some mass; the draw still follows the cohort's own births.
        tvd = 0.5 * sum(abs(drawn.get(k, 0) - expected.get(k, 0)) for k in expected.keys() | drawn.keys())
        assert tvd < 0.25, tvd
        other_sex = set(cohort_table("male" if sex == "female" else "female", 1960))
        top = sorted(drawn, key=drawn.get, reverse=True)[:20]
        assert sum(name in other_sex and name not in expected for name in top) == 0


def test_cohorts_differ_and_later_birth_years_use_the_last_cohort():
    n = 5_000
    tables = load_name_tables()
    assert tables.cohort_of(2023) == tables.first_cohorts[1] == 2015
    young, _ = draw_names(5, np.arange(n), np.full(n, "female"), np.full(n, 18), np.full(n, "white"))
    old, _ = draw_names(5, np.arange(n), np.full(n, "female"), np.full(n, 88), np.full(n, "white"))
    assert set(young) <= set(cohort_table("female", 2005))  # born 2006
    assert set(old) <= set(cohort_table("female", 1935))  # born 1936
    assert len(set(young[:500]) & set(old[:500])) < 50


def test_surnames_lean_to_the_race_and_ethnicity():
    n = 20_000
    surnames = pq.read_table(NAMES_DIR / "surnames.parquet").to_pandas().set_index("name")
    mean_share = {}
    for race in ("hispanic", "white", "asian"):
        _, last = draw_names(9, np.arange(n), np.full(n, "male"), np.full(n, 40), np.full(n, race))
        mean_share[race] = float(surnames.loc[last, "hispanic"].mean())
    assert mean_share["hispanic"] > 0.6 > 0.1 > mean_share["white"]
    assert mean_share["asian"] < mean_share["hispanic"]


def test_a_slot_gets_the_same_name_whatever_batch_it_is_drawn_in():
    sex = np.array(["female", "male", "female", "male"])
    age = np.array([30, 45, 71, 22])
    race = np.array(["black", "asian", "white", "hispanic"])
    whole = draw_names(11, np.array([10, 11, 12, 13]), sex, age, race)
    alone = draw_names(11, np.array([12]), sex[2:3], age[2:3], race[2:3])
    assert (whole[0][2], whole[1][2]) == (alone[0][0], alone[1][0])
    again = draw_names(12, np.array([10, 11, 12, 13]), sex, age, race)
    assert list(zip(*whole, strict=True)) != list(zip(*again, strict=True))  # another seed, other names
