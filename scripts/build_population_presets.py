"""Build data/populations/us_adults.yaml from the US Census tables in data/census.

Every marginal cites its table and year. Census categories are mapped onto the seed
taxonomy's values; where the census is coarser than the taxonomy (graduate degrees), the
census share is split in proportion to the taxonomy's curated prior, and the marginal says so.
Run from the repository root: python scripts/build_population_presets.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CENSUS = ROOT / "data" / "census"
OUT = ROOT / "data" / "populations" / "us_adults.yaml"

AGE_BANDS = {
    "18-24 years old": "18-24",
    "25-34 years old": "25-34",
    "35-44 years old": "35-44",
    "45-54 years old": "45-54",
    "55-64 years old": "55-64",
    "65+ years old": "65+",
}
REGIONS = {"1": "Northeast", "2": "Midwest", "3": "South", "4": "West"}


def read_rows(name: str) -> list[dict[str, str]]:
    with open(CENSUS / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def profile_estimates(name: str) -> dict[str, float]:
    """Data-profile label (after its last '!!') under a given parent -> estimate."""
    return {row["label"]: float(row["estimate"]) for row in read_rows(name)}


def normalise(counts: dict[str, float]) -> dict[str, float]:
    total = sum(counts.values())
    shares = {k: round(v / total, 6) for k, v in counts.items()}
    # Put the rounding residue on the largest share so the shares sum to exactly 1.
    largest = max(shares, key=shares.get)
    shares[largest] = round(shares[largest] + 1 - sum(shares.values()), 6)
    return shares


def age_by_sex() -> dict:
    counts = {}
    for row in read_rows("us_census_aggregate_prism_derived.csv"):
        band = AGE_BANDS.get(row["age_category"])
        if band:
            counts[f"{band}|female"] = float(row["All_Female"])
            counts[f"{band}|male"] = float(row["All_Male"])
    return {
        "attributes": ["demographics.age_band", "demographics.sex"],
        "universe": "adults 18 and over",
        "citation": "ACS 2022 1-year B01001B-I (sex by age by race), aggregated by PRISM "
        "(us_census_aggregate_prism_derived.csv)",
        "shares": normalise(counts),
    }


def region_and_state() -> list[dict]:
    rows = read_rows("us_state_region_population_NST-EST2023-ALLDATA.csv")
    regions = {REGIONS[r["REGION"]]: float(r["POPESTIMATE2023"]) for r in rows if r["SUMLEV"] == "020"}
    states = {
        f"{REGIONS[r['REGION']]}|{r['NAME']}": float(r["POPESTIMATE2023"])
        for r in rows
        if r["SUMLEV"] == "040" and r["REGION"] in REGIONS
    }
    citation = "Census Bureau Vintage 2023 population estimates NST-EST2023-ALLDATA, POPESTIMATE2023"
    return [
        {
            "attributes": ["demographics.region"],
            "universe": "resident population (all ages)",
            "citation": citation,
            "shares": normalise(regions),
        },
        {
            "attributes": ["demographics.region", "demographics.state"],
            "universe": "resident population (all ages)",
            "citation": citation,
            "shares": normalise(states),
        },
    ]


def education(taxonomy_prior: dict[str, float]) -> dict:
    est = profile_estimates("us_acs2018_1yr_DP02_social_household_type_education.csv")
    base = "Estimate!!EDUCATIONAL ATTAINMENT!!Population 25 years and over!!"
    graduate = est[base + "Graduate or professional degree"]
    split = taxonomy_prior["master's degree"] + taxonomy_prior["doctorate"]
    counts = {
        "high school or less": est[base + "Less than 9th grade"]
        + est[base + "9th to 12th grade, no diploma"]
        + est[base + "High school graduate (includes equivalency)"],
        "some college": est[base + "Some college, no degree"],
        "associate degree": est[base + "Associate's degree"],
        "bachelor's degree": est[base + "Bachelor's degree"],
        "master's degree": graduate * taxonomy_prior["master's degree"] / split,
        "doctorate": graduate * taxonomy_prior["doctorate"] / split,
    }
    return {
        "attributes": ["education.highest_level"],
        "universe": "population 25 years and over",
        "citation": "ACS 2018 1-year DP02 (educational attainment)",
        "note": "The census 'graduate or professional degree' share is split between master's degree and "
        "doctorate in proportion to the seed taxonomy's curated prior.",
        "shares": normalise(counts),
    }


def household_type() -> dict:
    est = profile_estimates("us_acs2018_1yr_DP02_social_household_type_education.csv")
    base = "Estimate!!HOUSEHOLDS BY TYPE!!Total households!!"
    fam = base + "Family households (families)!!"
    nonfam = base + "Nonfamily households"
    alone = est[nonfam + "!!Householder living alone"]
    counts = {
        "married couple": est[fam + "Married-couple family"],
        "single father family": est[fam + "Male householder, no wife present, family"],
        "single mother family": est[fam + "Female householder, no husband present, family"],
        "living alone": alone,
        "shared with non-relatives": est[nonfam] - alone,
    }
    return {
        "attributes": ["demographics.household_type"],
        "universe": "households",
        "citation": "ACS 2018 1-year DP02 (households by type)",
        "shares": normalise(counts),
    }


def marital_status() -> dict:
    est = profile_estimates("us_acs2018_1yr_DP02_social_household_type_education.csv")
    names = {
        "Never married": "never married",
        "Now married, except separated": "married",
        "Separated": "separated",
        "Widowed": "widowed",
        "Divorced": "divorced",
    }
    counts = dict.fromkeys(names.values(), 0.0)
    for sex in ("Males", "Females"):
        for label, value in names.items():
            counts[value] += est[f"Estimate!!MARITAL STATUS!!{sex} 15 years and over!!{label}"]
    return {
        "attributes": ["demographics.marital_status"],
        "universe": "population 15 years and over",
        "citation": "ACS 2018 1-year DP02 (marital status)",
        "shares": normalise(counts),
    }


def occupation_group() -> dict:
    est = profile_estimates("us_acs2018_1yr_DP03_economic_employment_occupation_industry.csv")
    base = "Estimate!!OCCUPATION!!Civilian employed population 16 years and over!!"
    names = {
        "Management, business, science, and arts occupations": "management, business, science and arts",
        "Service occupations": "service",
        "Sales and office occupations": "sales and office",
        "Natural resources, construction, and maintenance occupations": "natural resources, construction and maintenance",  # noqa: E501
        "Production, transportation, and material moving occupations": "production, transportation and material moving",
    }
    counts = {value: est[base + label] for label, value in names.items()}
    return {
        "attributes": ["work.occupation_group"],
        "universe": "civilian employed population 16 and over",
        "citation": "ACS 2018 1-year DP03 (occupation)",
        "shares": normalise(counts),
    }


def household_income() -> dict:
    est = profile_estimates("us_acs2018_1yr_DP03_economic_employment_occupation_industry.csv")
    base = "Estimate!!INCOME AND BENEFITS (IN 2018 INFLATION-ADJUSTED DOLLARS)!!Total households!!"
    bins = {
        "under $25k": ["Less than $10,000", "$10,000 to $14,999", "$15,000 to $24,999"],
        "$25k-$50k": ["$25,000 to $34,999", "$35,000 to $49,999"],
        "$50k-$75k": ["$50,000 to $74,999"],
        "$75k-$100k": ["$75,000 to $99,999"],
        "$100k-$150k": ["$100,000 to $149,999"],
        "over $150k": ["$150,000 to $199,999", "$200,000 or more"],
    }
    counts = {value: sum(est[base + label] for label in labels) for value, labels in bins.items()}
    return {
        "attributes": ["finances.household_income"],
        "universe": "households",
        "citation": "ACS 2018 1-year DP03 (household income, 2018 dollars)",
        "shares": normalise(counts),
    }


def race_ethnicity() -> dict:
    row = next(r for r in read_rows("us_census_aggregate_prism_derived.csv") if r["age_category"] == "All Ages")
    groups = {
        "White": "white",
        "Black": "black",
        "Hispanic": "hispanic",
        "Asian": "asian",
        "Mixed": "multiracial",
        "Other": "other",
    }
    counts = {value: float(row[f"{key}_Male"]) + float(row[f"{key}_Female"]) for key, value in groups.items()}
    return {
        "attributes": ["demographics.race_ethnicity"],
        "universe": "adults 18 and over",
        "citation": "ACS 2022 1-year B01001B-I, aggregated by PRISM (Hispanic any race; native and "
        "Pacific islander folded into other)",
        "shares": normalise(counts),
    }


def main() -> None:
    seed = yaml.safe_load((ROOT / "taxonomy" / "seed" / "core.yaml").read_text(encoding="utf-8"))
    prior = _find_values(seed, "education.highest_level")
    preset = {
        "name": "us_adults",
        "description": "Adult residents of the United States. Generated by scripts/build_population_presets.py "
        "from the US Census Bureau tables in data/census; do not edit by hand.",
        "marginals": [
            age_by_sex(),
            *region_and_state(),
            education(prior),
            household_type(),
            marital_status(),
            occupation_group(),
            household_income(),
            race_ethnicity(),
        ],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(yaml.safe_dump(preset, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(preset['marginals'])} marginals")


def _find_values(doc: dict, attr_id: str) -> dict[str, float]:
    def walk(node: dict):
        for attr in node.get("attributes", []):
            if attr["id"] == attr_id:
                return attr.get("values") or doc["scales"][attr["scale"]]
        for sub in node.get("subcategories", []):
            found = walk(sub)
            if found:
                return found
        return None

    for root in doc["categories"]:
        found = walk(root)
        if found:
            return found
    raise SystemExit(f"{attr_id} not in the seed taxonomy")


if __name__ == "__main__":
    main()
