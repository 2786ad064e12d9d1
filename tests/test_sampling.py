import pytest

from schemas.config import StratumVariable
from schemas.errors import UserInputError
from taxonomy.loader import load_taxonomy
from taxonomy.quotas import allocate_largest_remainder, assign_slots, plan_quotas
from taxonomy.sampling import persona_id_for, sample_skeletons

TAXONOMY = load_taxonomy("seed:core")


def test_largest_remainder_sums_exactly_and_matches_hand_computed():
    assert allocate_largest_remainder([0.5, 0.3, 0.2], 7) == [4, 2, 1]  # 3.5, 2.1, 1.4 -> +1 to 0.5
    assert allocate_largest_remainder([1 / 3] * 3, 10) == [4, 3, 3]
    assert sum(allocate_largest_remainder([0.12, 0.17, 0.16, 0.15, 0.16, 0.24], 997)) == 997


def test_plan_is_joint_over_strata_and_exact():
    strata = [StratumVariable(attribute="demographics.gender", shares={"woman": 0.5, "man": 0.5}),
              StratumVariable(attribute="demographics.region", shares={"South": 0.6, "West": 0.4})]
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


def test_facts_constraints_are_enforced_by_redrawing():
    from taxonomy.loader import sampling_order
    from taxonomy.sampling import sample_skeleton
    from validators.constraints import enforce_constraints, facts_constraints
    from validators.engine import build_rule_table
    from validators.rule_pack import evaluate_rules, load_rule_pack

    constraints = facts_constraints(load_rule_pack())
    assert {"children_in_one_person_household", "adult_children_too_young"} <= {r.id for r in constraints}
    cells = assign_slots(plan_quotas([], TAXONOMY, 2000), seed=5)
    drawn = sample_skeletons(TAXONOMY, cells, 5, range(2000))
    before = evaluate_rules(build_rule_table([(s, None) for s in drawn], TAXONOMY), constraints)
    assert before  # the independent draws do produce impossible combinations
    order = sampling_order(TAXONOMY)
    fixed, redraws = enforce_constraints(
        drawn, lambda s, attempt: sample_skeleton(TAXONOMY, order, cells[s.slot], 5, s.slot, attempt),
        TAXONOMY, constraints)
    assert evaluate_rules(build_rule_table([(s, None) for s in fixed], TAXONOMY), constraints) == []
    assert [s.persona_id for s in fixed] == [s.persona_id for s in drawn]
    assert sum(len(v) for v in redraws.values()) >= len({pid for pid, _, _ in before})
    again, _ = enforce_constraints(
        sample_skeletons(TAXONOMY, cells, 5, range(2000)),
        lambda s, attempt: sample_skeleton(TAXONOMY, order, cells[s.slot], 5, s.slot, attempt),
        TAXONOMY, constraints)
    assert again == fixed  # deterministic for a seed
