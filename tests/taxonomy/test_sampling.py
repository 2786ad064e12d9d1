import math
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest

from schemas.config import QuotaConfig, StratumVariable
from schemas.errors import UserInputError
from taxonomy.draws import persona_id_for
from taxonomy.loader import load_taxonomy
from taxonomy.presets import load_preset
from taxonomy.quotas import allocate_largest_remainder, assign_slots, plan_quotas
from taxonomy.sampling import applicable_mask, sample_batch, sample_skeletons

TAXONOMY = load_taxonomy("seed:core")


def test_largest_remainder_sums_exactly_and_matches_hand_computed():
    assert allocate_largest_remainder([0.5, 0.3, 0.2], 7) == [4, 2, 1]  # 3.5, 2.1, 1.4 -> +1 to 0.5
    assert allocate_largest_remainder([1 / 3] * 3, 10) == [4, 3, 3]
    assert sum(allocate_largest_remainder([0.12, 0.17, 0.16, 0.15, 0.16, 0.24], 997)) == 997


def test_plan_is_joint_over_strata_and_exact():
    strata = [
        StratumVariable(attribute="demographics.gender", shares={"woman": 0.5, "man": 0.5}),
        StratumVariable(attribute="demographics.region", shares={"South": 0.6, "West": 0.4}),
    ]
    cells = plan_quotas(strata, TAXONOMY, 10)
    assert sum(c.count for c in cells) == 10 and len(cells) == 4
    assert {c.label: c.count for c in cells}["gender=woman;region=South"] == 3


def test_unknown_stratum_value_is_a_user_error():
    strata = [StratumVariable(attribute="demographics.gender", shares={"woman": 0.5, "robot": 0.5})]
    with pytest.raises(UserInputError, match="robot"):
        plan_quotas(strata, TAXONOMY, 10)


def test_sampling_is_deterministic_and_honours_strata_and_conditions():
    strata = [StratumVariable(attribute="demographics.age_band", shares={"18-24": 0.5, "65+": 0.5})]
    cells = assign_slots(plan_quotas(strata, TAXONOMY, 200), seed=3)
    first = sample_skeletons(TAXONOMY, cells, 3, range(200))
    again = sample_skeletons(TAXONOMY, cells, 3, range(200))
    assert first == again
    assert len({s.persona_id for s in first}) == 200
    assert sum(s.attributes["demographics.age_band"] == "18-24" for s in first) == 100
    for s in first:
        a = s.attributes
        low, high = (18, 24) if a["demographics.age_band"] == "18-24" else (65, 90)
        assert low <= int(a["demographics.age"]) <= high
        employed = a["work.employment_status"] in ("employed full-time", "employed part-time", "self-employed")
        assert ("work.occupation" in a) == employed
        if a["demographics.age_band"] == "18-24":
            assert a["education.highest_level"] not in ("master's degree", "doctorate")
            assert a["work.employment_status"] != "retired"


def test_persona_id_depends_only_on_seed_and_slot():
    assert persona_id_for(1, 5) == persona_id_for(1, 5)
    assert persona_id_for(1, 5) != persona_id_for(2, 5) != persona_id_for(1, 6)


def test_facts_constraints_hold_in_100k_samples_and_redraws_are_reported():
    from validators.constraints import batch_rule_table, facts_constraints, sample_constrained
    from validators.rule_pack import load_rule_pack, violating_ids

    constraints = facts_constraints(load_rule_pack())
    assert {"children_in_one_person_household", "adult_children_too_young"} <= {r.id for r in constraints}
    n = 100_000
    cells = assign_slots(plan_quotas([], TAXONOMY, n), seed=5)
    raw = sample_batch(TAXONOMY, cells, 5, range(n), 20)
    assert violating_ids(batch_rule_table(raw, np.arange(n), TAXONOMY), constraints)  # independent draws clash
    batch, redraws = sample_constrained(TAXONOMY, cells, 5, range(n), 20, constraints)
    assert violating_ids(batch_rule_table(batch, np.arange(n), TAXONOMY), constraints) == []
    assert sum(len(v) for v in redraws.values()) > 0
    # applicable_when holds for every drawn value
    known = TAXONOMY.attributes()
    for attr_id, codes in batch.codes.items():
        present = ~np.isnan(codes) if codes.dtype.kind == "f" else codes >= 0
        assert not (present & ~applicable_mask(known[attr_id], batch, TAXONOMY)).any(), attr_id
    again, _ = sample_constrained(TAXONOMY, cells, 5, range(n), 20, constraints)
    assert all(np.array_equal(again.codes[a], batch.codes[a], equal_nan=True) for a in batch.codes)


def test_a_slot_draws_the_same_whatever_batch_it_is_in():
    cells = assign_slots(plan_quotas([], TAXONOMY, 300), seed=2)
    whole = sample_skeletons(TAXONOMY, cells, 2, range(300), 30)
    part = sample_skeletons(TAXONOMY, cells[100:120], 2, range(100, 120), 30)
    assert whole[100:120] == part


@pytest.mark.parametrize("seed", range(5))
def test_quotas_are_exact_for_random_plans(seed):
    rng = np.random.default_rng(seed)
    attrs = ["demographics.age_band", "demographics.region", "demographics.urbanicity"]
    strata = []
    for attr_id in attrs[: rng.integers(1, 4)]:
        values = list(TAXONOMY.attributes()[attr_id].values)
        weights = rng.dirichlet(np.ones(len(values)))
        strata.append(StratumVariable(attribute=attr_id, shares=dict(zip(values, weights.tolist(), strict=True))))
    population = int(rng.integers(50, 5000))
    cells = plan_quotas(strata, TAXONOMY, population)
    assert sum(c.count for c in cells) == population
    assert all(abs(c.count - c.share * population) < 1 for c in cells)
    skeletons = sample_skeletons(TAXONOMY, assign_slots(cells, seed), seed, range(population))
    produced = Counter(s.stratum for s in skeletons)
    assert all(produced[c.label] == c.count for c in cells)  # zero deviation from the plan


def test_raking_reproduces_given_marginals():
    quotas = QuotaConfig(
        preset="us_adults",
        variables=["demographics.age_band", "demographics.sex", "demographics.region", "demographics.state"],
    )
    cells = plan_quotas(
        [
            StratumVariable(
                attribute="education.highest_level",
                shares={
                    "high school or less": 0.4,
                    "some college": 0.2,
                    "associate degree": 0.1,
                    "bachelor's degree": 0.2,
                    "master's degree": 0.07,
                    "doctorate": 0.03,
                },
            )
        ],
        TAXONOMY,
        100_000,
        quotas,
    )
    preset = load_preset("us_adults", TAXONOMY)
    for table in preset.marginals:
        if not set(table.attributes) <= set(quotas.variables) or table.attributes == ["demographics.region"]:
            continue  # (region alone is implied by the region x state table, which raking uses)
        fitted: dict[str, float] = {}
        for cell in cells:
            values = dict(cell.values)
            key = "|".join(values[a] for a in table.attributes)
            fitted[key] = fitted.get(key, 0.0) + cell.share
        for key, share in table.shares.items():
            assert abs(fitted.get(key, 0.0) - share / sum(table.shares.values())) < 1e-6
    education: dict[str, float] = {}
    for cell in cells:
        value = dict(cell.values)["education.highest_level"]
        education[value] = education.get(value, 0.0) + cell.share
    assert abs(education["doctorate"] - 0.03) < 1e-6
    # the seed table's structure survives: no state outside its census region
    region_of = {s.split("|")[1]: s.split("|")[0] for s in preset.marginals[2].shares}
    assert all(region_of[dict(c.values)["demographics.state"]] == dict(c.values)["demographics.region"] for c in cells)


def test_raking_starts_from_depends_on_tables():
    strata = [
        StratumVariable(attribute="demographics.age_band", shares={"18-24": 0.5, "65+": 0.5}),
        StratumVariable(
            attribute="work.employment_status", shares={"student": 0.2, "retired": 0.3, "employed full-time": 0.5}
        ),
    ]
    cells = {c.label: c for c in plan_quotas(strata, TAXONOMY, 1000)}
    # the seed says no 18-24 retirees and no 65+ students, so raking puts none there
    assert "age_band=18-24;employment_status=retired" not in cells
    assert "age_band=65+;employment_status=student" not in cells


@pytest.mark.parametrize(
    ("strata", "quotas", "needle"),
    [
        ([StratumVariable(attribute="demographics.age", shares={"30": 1.0})], QuotaConfig(), "numeric"),
        ([], QuotaConfig(preset="us_adults", variables=["hobbies.main_hobby"]), "no table"),
        ([], QuotaConfig(preset="nowhere"), "no such population preset"),
        (
            [StratumVariable(attribute="demographics.region", shares={"South": 0.9, "West": 0.1})],
            QuotaConfig(preset="us_adults", variables=["demographics.region"]),
            "make the tables agree",
        ),
        (
            [
                StratumVariable(attribute="demographics.age_band", shares={"18-24": 1.0}),
                StratumVariable(attribute="work.employment_status", shares={"retired": 1.0}),
            ],
            QuotaConfig(),
            "did not converge",
        ),
        (
            [StratumVariable(attribute="demographics.region", shares={"South": 0.5, "West": 0.5})],
            QuotaConfig(min_per_cell=6),
            "more than population",
        ),
    ],
)
def test_infeasible_or_inconsistent_targets_are_refused(strata, quotas, needle):
    with pytest.raises(UserInputError, match=needle):
        plan_quotas(strata, TAXONOMY, 10, quotas)


def test_min_per_cell_and_joint_cells():
    strata = [
        StratumVariable(
            attribute="demographics.region", shares={"Northeast": 0.01, "Midwest": 0.01, "South": 0.49, "West": 0.49}
        )
    ]
    counts = {c.label: c.count for c in plan_quotas(strata, TAXONOMY, 100, QuotaConfig(min_per_cell=5))}
    assert 5 <= counts["region=Northeast"] <= 6 and sum(counts.values()) == 100
    joint = QuotaConfig(
        joint=[
            {"values": {"demographics.sex": "female", "demographics.region": "South"}, "share": 0.7},
            {"values": {"demographics.sex": "male", "demographics.region": "West"}, "share": 0.3},
        ]
    )
    assert sorted(c.count for c in plan_quotas([], TAXONOMY, 10, joint)) == [3, 7]


def test_deep_selection_covers_the_taxonomy_and_spreads_over_roots(tmp_path):
    from corpus.sampling_metrics import sampling_metrics
    from taxonomy.sample_tally import metrics_scope
    from taxonomy.selection import per_root_counts
    from taxonomy.skeleton_table import batch_to_table

    assert per_root_counts({"a": 30, "b": 10, "c": 1}, 8) == {"a": 5, "b": 2, "c": 1}
    cells = assign_slots(plan_quotas([], TAXONOMY, 1000), 4)
    batch = sample_batch(TAXONOMY, cells, 4, range(1000), 50)
    pq.write_table(batch_to_table(batch, TAXONOMY, {}, 0), tmp_path / "part-0.parquet")
    metrics = sampling_metrics(
        str(tmp_path / "*.parquet"), [{"values": [], "share": 1.0, "count": 1000}], metrics_scope(TAXONOMY)
    )
    assert metrics["leaf_coverage"] >= 0.95
    assert metrics["joint"]["tvd"] == 0 and metrics["joint"]["count_mismatches"] == 0
    core = len(TAXONOMY.core_ids())
    assert core + 30 < metrics["attributes_per_persona"]["mean"] <= core + 50
    assert all(share > 0 for share in metrics["root_share"].values())


def test_sampling_metrics_on_a_hand_computed_example():
    from corpus.sampling_metrics import distance, normalised_entropy

    d = distance({"a": 0.5, "b": 0.5}, {"a": 0.25, "b": 0.75})
    assert d["max_abs_dev"] == 0.25 and d["tvd"] == 0.25
    assert abs(d["kl"] - (0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75))) < 1e-12
    assert distance({"c": 1.0}, {"a": 1.0})["kl"] == math.inf
    assert normalised_entropy([5, 5, 5, 5]) == pytest.approx(1.0) and normalised_entropy([10, 0]) == 0.0


def test_metrics_tallied_from_codes_equal_metrics_read_back_from_parquet(tmp_path):
    """`populace sample` tallies counts from codes chunk by chunk; a build reads Parquet with DuckDB."""
    from corpus.sampling_metrics import cells_as_json, metrics_from_counts, sampling_metrics, stratum_variables
    from schemas.sample_counts import SampleCounts
    from taxonomy.sample_tally import metrics_scope, tally_batch
    from taxonomy.skeleton_table import batch_to_table

    preset = load_preset("us_adults", TAXONOMY)
    quotas = QuotaConfig(preset="us_adults", variables=["demographics.age_band", "demographics.region"])
    cells = plan_quotas([], TAXONOMY, 3000, quotas)
    planned = cells_as_json(cells)
    scope = metrics_scope(TAXONOMY, preset)
    slot_cells = assign_slots(cells, 9)
    counts = SampleCounts()
    for part, start in enumerate(range(0, 3000, 1000)):  # three chunks, as write_sample does
        batch = sample_batch(TAXONOMY, slot_cells[start : start + 1000], 9, range(start, start + 1000), 30)
        counts.add(tally_batch(batch, TAXONOMY, stratum_variables(planned), scope))
        pq.write_table(batch_to_table(batch, TAXONOMY, {}, part), tmp_path / f"part-{part}.parquet")
    tallied = metrics_from_counts(counts, planned, scope)
    read_back = sampling_metrics(str(tmp_path / "*.parquet"), planned, scope)
    assert _same(tallied, read_back)
    assert tallied["personas"] == 3000 and tallied["joint"]["count_mismatches"] == 0
    assert set(tallied["preset_fit"]) == {" x ".join(m.attributes) for m in preset.marginals}


def _same(a, b) -> bool:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        return all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        assert a == pytest.approx(b, abs=1e-12), (a, b)
        return True
    assert a == b
    return True


def test_skeletons_read_from_a_shard_table_match_its_rows():
    """The fast decoder of the dictionary-encoded attributes map agrees with pyarrow's own, slices included."""
    import pyarrow as pa

    from taxonomy.skeleton_table import skeletons_of_table
    from validators.constraints import sample_shard_table

    taxonomy = load_taxonomy("seed:core")
    cells = assign_slots(plan_quotas([], taxonomy, 40), 5)
    table = sample_shard_table(taxonomy, cells, 5, range(40), 6, 0)
    rows = table.to_pylist()
    for part in (table, table.slice(7, 20), pa.concat_tables([table.slice(30), table.slice(0, 5)])):
        expected = part.to_pylist()
        got = skeletons_of_table(part)
        assert [s.attributes for s in got] == [dict(r["attributes"]) for r in expected]
        assert [(s.persona_id, s.slot, s.stratum, s.name) for s in got] == [
            (r["persona_id"], r["slot"], r["stratum"], r["name"]) for r in expected
        ]
    assert len({s.persona_id for s in skeletons_of_table(table)}) == len(rows) == 40


def test_a_backfill_wave_asks_for_its_shortfall_and_what_it_expects_to_lose():
    from taxonomy.quotas import MAX_BACKFILL_LOSS, QuotaCell, backfill_asks, plan_backfill

    assert backfill_asks({"a": 37, "b": 1}, 0.0) == {"a": 37, "b": 1}  # nothing lost last wave: exactly the gap
    # 1,130 short at a 1.36% loss: 15.6 expected lost again, 3.9 its standard deviation.
    assert backfill_asks({"a": 1130}, 0.0136) == {"a": 1130 + 20}
    assert backfill_asks({"a": 3}, 0.002) == {"a": 4}
    # Everything lost (a model that fails every check): about twice the gap, not unboundedly more.
    capped = backfill_asks({"a": 100}, 1.0)
    assert capped == backfill_asks({"a": 100}, MAX_BACKFILL_LOSS) == {"a": 100 + 100 + 8}
    asks = backfill_asks({"x=a": 2, "x=b": 5}, 0.1)
    assert asks["x=a"] > 2 and asks["x=b"] > 5
    cells = [QuotaCell((("x", "a"),), 0.5, 10), QuotaCell((("x", "b"),), 0.5, 10)]
    assert [c.label for c in plan_backfill(cells, asks)] == ["x=a"] * asks["x=a"] + ["x=b"] * asks["x=b"]
