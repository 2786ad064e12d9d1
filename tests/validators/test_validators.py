import pyarrow as pa
import pytest

from schemas.errors import UserInputError
from schemas.tables import PROPOSALS
from taxonomy.loader import load_taxonomy
from tests.helpers.skeletons import NARRATIVE, answer, skeleton, skeleton_table
from validators.engine import validate_batch, validate_shard_table
from validators.fidelity import (
    find_age_contradiction,
    find_gender_contradiction,
    find_occupation_contradiction,
    find_place_contradiction,
    find_trait_contradiction,
    find_unreflected_facts,
)
from validators.rule_pack import Rule, evaluate_rules, load_rule_pack
from validators.settle import settle_slots

TAXONOMY = load_taxonomy("seed:core")
RULES = load_rule_pack()


def test_a_good_persona_passes_every_check_and_opens_with_the_facts():
    outcomes, verdicts = validate_batch([(skeleton(), answer())], TAXONOMY, RULES, 0)
    assert outcomes[0].passed and outcomes[0].feedback == []
    assert outcomes[0].proposal.name == "Dana Reyes"
    assert outcomes[0].proposal.narrative == f"Dana Reyes is a 45-year-old nurse. {NARRATIVE}"
    checks = set(verdicts.column("check").to_pylist())
    assert checks >= {"schema", "fidelity:age", "fidelity:name", "rule:age_vs_education"}
    assert all(verdicts.column("passed").to_pylist()) and set(verdicts.column("message").to_pylist()) == {""}


def test_a_revise_round_validates_only_the_slots_it_proposed_again():
    slots = [skeleton("p-1"), skeleton("p-2"), skeleton("p-3")]
    skeletons = skeleton_table(slots)
    proposals = pa.Table.from_pylist(
        [
            {"persona_id": "p-1", "round": 1, "raw_output": "", "error": "timeout"},
            {"persona_id": "p-3", "round": 1, "raw_output": answer(), "error": None},
        ],
        schema=PROPOSALS,
    )
    verdicts = validate_shard_table(skeletons, proposals, TAXONOMY, 1)
    _, expected = validate_batch([(slots[0], ""), (slots[2], answer())], TAXONOMY, RULES, 1, {"p-1": "timeout"})
    assert verdicts.equals(expected)
    assert set(verdicts.column("persona_id").to_pylist()) == {"p-1", "p-3"}  # p-2 passed round 0
    failed = [r for r in verdicts.to_pylist() if not r["passed"]]
    assert [(r["persona_id"], r["check"]) for r in failed] == [("p-1", "backend")]
    assert set(verdicts.column("round").to_pylist()) == {1}


def test_each_failure_is_named_with_feedback():
    items = [
        (skeleton("p-1"), "{not json"),
        (skeleton("p-2"), answer(narrative=NARRATIVE + " At 31 years old she feels young.")),
        (skeleton("p-3", **{"demographics.age": "20", "education.highest_level": "doctorate"}), answer()),
        (skeleton("p-4", **{"demographics.age": "30", "work.employment_status": "retired"}), answer()),
        (skeleton("p-5"), answer(narrative=NARRATIVE + " She works as a truck driver at night.")),
        (skeleton("p-6"), answer(narrative="Dana likes tea.")),
        (skeleton("p-7", **{"demographics.gender": "man"}), answer()),
        (
            skeleton("p-8", **{"demographics.region": "South", "demographics.state": "Georgia"}),
            answer(narrative=NARRATIVE + " She lives in Miami, Florida."),
        ),
        (skeleton("p-9"), answer(narrative=NARRATIVE + " I love my patients and my dog.")),
        (skeleton("p-10"), answer(narrative=NARRATIVE + " She is <b>proud</b> of it.")),
        (skeleton("p-11"), answer(narrative=NARRATIVE + " This persona is fictional.")),
        (skeleton("p-12"), answer(narrative="Sarah loves her patients at the clinic. " + NARRATIVE)),
        (skeleton("p-13"), answer(narrative="Dana Reyes is a 45-year-old nurse who loves gardening. " + NARRATIVE)),
        (skeleton("p-14"), answer(narrative=NARRATIVE + " As the narrative says, she was rejected.")),
    ]
    outcomes, _ = validate_batch(items, TAXONOMY, RULES, 1)
    failed = {o.persona_id: o.failed for o in outcomes}
    assert failed == {
        "p-1": ["schema"],
        "p-2": ["fidelity:age"],
        "p-3": ["rule:age_vs_education", "rule:doctorate_too_young"],
        "p-4": ["taxonomy:applicable_when", "rule:retired_too_young"],  # a retiree with a job
        "p-5": ["fidelity:occupation"],
        "p-6": ["schema"],  # too short
        "p-7": ["fidelity:gender"],
        "p-8": ["fidelity:place"],
        "p-9": ["rule:narrative_first_person"],
        "p-10": ["rule:markup_in_narrative"],
        "p-11": ["rule:narrative_meta_talk"],
        "p-12": ["fidelity:name"],
        "p-13": ["rule:opening_repeated"],
        "p-14": ["rule:narrative_meta_talk", "rule:feedback_echo"],
    }
    by_id = {o.persona_id: o for o in outcomes}
    assert "31" in by_id["p-2"].feedback[0] and "45" in by_id["p-2"].feedback[0]
    assert any("20-year-old" in line for line in by_id["p-3"].feedback)
    assert "Sarah" in by_id["p-12"].feedback[0] and "Dana Reyes" in by_id["p-12"].feedback[0]


def test_ages_of_other_people_are_not_the_persons_age():
    for other in (
        "Her 8-year-old grandson visits on Sundays.",
        "Her son Tom, 12, plays soccer.",
        "She has a 3-year-old dog named Max.",
        "Her daughter, aged 19, studies in town.",
    ):
        outcomes, _ = validate_batch([(skeleton(), answer(narrative=f"{NARRATIVE} {other}"))], TAXONOMY, RULES, 0)
        assert outcomes[0].passed, (other, outcomes[0].feedback)
    outcomes, _ = validate_batch(
        [(skeleton(), answer(narrative=f"{NARRATIVE} Dana, 52, feels young."))], TAXONOMY, RULES, 0
    )
    assert outcomes[0].failed == ["fidelity:age"]


def test_inapplicable_fact_is_caught():
    retired = skeleton("p-7", **{"work.employment_status": "retired", "demographics.age": "70"})
    outcomes, _ = validate_batch([(retired, answer())], TAXONOMY, RULES, 0)
    assert "taxonomy:applicable_when" in outcomes[0].failed  # a retiree with an occupation


def test_backend_error_fails_the_backend_check():
    outcomes, _ = validate_batch([(skeleton(), "")], TAXONOMY, RULES, 0, {"p-1": "timeout"})
    assert outcomes[0].failed == ["backend"] and "timeout" in outcomes[0].feedback[0]


def test_fidelity_helpers():
    assert find_age_contradiction("Ana, 45, is a nurse.", "45") is None
    assert find_age_contradiction("Ana is a nurse. Her son Tom, 8, plays.", "45", "Ana") is None
    assert find_age_contradiction("a 52-year-old nurse", "45")
    assert find_occupation_contradiction("She works as a nurse at the clinic.", "nurse", {"nurse"}) is None
    assert find_occupation_contradiction("He works as a cook.", None, set())
    assert find_occupation_contradiction("She is a lawyer and proud.", "nurse", {"nurse", "lawyer"})
    assert find_unreflected_facts("Ana, 45, is a nurse.", "45", "nurse") is None
    assert "occupation" in find_unreflected_facts("Ana, 45, likes tea.", "45", "nurse")
    assert "age" in find_unreflected_facts("Ana is a nurse.", "45", "nurse")
    assert find_place_contradiction("She grew up in Ohio.", "Midwest") is None
    assert "Texas" in find_place_contradiction("She lives in Austin, Texas.", "West")
    assert "lives in Texas" in find_place_contradiction("She lives in Austin, Texas.", "South", "Florida")
    assert find_place_contradiction("She grew up in Texas and now lives in Florida.", "South", "Florida") is None
    assert find_gender_contradiction("Dana, 45, is a nurse. He loves his garden.", "woman")
    assert find_gender_contradiction("Dana is a nurse; she and her husband cook. He bakes.", "woman") is None
    assert "man" in find_gender_contradiction("Dana is a man who works as a nurse.", "woman")
    assert find_gender_contradiction("Sam is a nurse. He bakes his own bread.", "non-binary") is None
    assert find_trait_contradiction("A shy reader.", {"personality.extraversion": "low"}) is None
    assert "shy" in find_trait_contradiction("A shy reader.", {"personality.extraversion": "high"})


def test_rule_with_bad_sql_is_a_user_error():
    bad = Rule(id="broken", severity="error", when="no_such_column > 1", message="x")
    outcomes_table = __import__("pyarrow").table({"persona_id": ["p-1"]})
    with pytest.raises(UserInputError, match="broken"):
        evaluate_rules(outcomes_table, [bad])


def test_settle_takes_the_last_round_and_keeps_reason():
    sks = [skeleton("p-1"), skeleton("p-2")]
    proposals = {
        0: {
            "p-1": {"raw_output": "{bad", "prompt_tokens": 5, "completion_tokens": 2},
            "p-2": {"raw_output": answer(), "prompt_tokens": 5, "completion_tokens": 3},
        },
        1: {"p-1": {"raw_output": "{still bad", "prompt_tokens": 6, "completion_tokens": 2}},
    }
    verdicts = {
        r: validate_batch(
            [(s, proposals[r][s.persona_id]["raw_output"]) for s in sks if s.persona_id in proposals[r]],
            TAXONOMY,
            RULES,
            r,
        )[1].to_pylist()
        for r in (0, 1)
    }
    rows = {r["persona_id"]: r for r in settle_slots(sks, proposals, verdicts).to_pylist()}
    assert rows["p-1"]["accepted"] is False and rows["p-1"]["reason"] == "schema" and rows["p-1"]["rounds"] == 2
    assert rows["p-1"]["prompt_tokens"] == 11
    assert rows["p-2"]["accepted"] is True and rows["p-2"]["name"] == "Dana Reyes" and rows["p-2"]["rounds"] == 1


def test_judge_thresholds_are_a_separate_step():
    from schemas.config import JudgeConfig
    from validators.judge import apply_thresholds, parse_judgement
    from workers.backend import GenerationResult

    good = parse_judgement(
        GenerationResult(request_id="p-1", text='{"plausibility": 4, "consistency": 5, "reason": "fine"}')
    )
    low = parse_judgement(
        GenerationResult(request_id="p-2", text='{"plausibility": 4, "consistency": 2, "reason": "age differs"}')
    )
    broken = parse_judgement(GenerationResult(request_id="p-3", text="{oops"))
    assert (good["plausibility"], good["consistency"]) == (4, 5) and broken["plausibility"] is None
    settled = [
        {"persona_id": pid, "accepted": True, "reason": None, "detail": None, "name": "A B", "narrative": "x"}
        for pid in ("p-1", "p-2", "p-3")
    ]
    rows = apply_thresholds(settled, {j["persona_id"]: j for j in (good, low, broken)}, JudgeConfig(enabled=True))
    assert [(r["accepted"], r["reason"]) for r in rows] == [
        (True, None),
        (False, "judge:consistency"),
        (False, "judge:unscored"),
    ]
    assert rows[0]["judge_consistency"] == 5 and rows[1]["judge_consistency"] == 2


def test_feedback_names_the_field_and_the_revise_prompt_carries_it():
    from workers.prompts import render_proposal_messages

    outcomes, _ = validate_batch(
        [(skeleton("p-1"), answer(narrative=NARRATIVE + " At 31 years old she feels young."))], TAXONOMY, RULES, 0
    )
    feedback = outcomes[0].feedback
    assert feedback[0].startswith("narrative: ")
    user = render_proposal_messages(skeleton("p-1"), TAXONOMY, feedback)[-1]["content"]
    assert feedback[0] in user and 'The portrait already begins: "Dana Reyes is a 45-year-old nurse."' in user
    first = render_proposal_messages(skeleton("p-1"), TAXONOMY)[-1]["content"]
    assert "rejected" not in first and "call the person Dana" in first


def test_the_opening_sentence_states_the_facts_in_the_third_person():
    from taxonomy.opening import write_opening

    assert (
        write_opening(
            "Joann Jackson",
            {"demographics.age": "76", "work.employment_status": "retired", "demographics.state": "Colorado"},
        )
        == "Joann Jackson is a 76-year-old retiree in Colorado."
    )
    assert (
        write_opening(
            "Ed Park", {"demographics.age": "81", "work.occupation": "electrician", "demographics.region": "West"}
        )
        == "Ed Park is an 81-year-old electrician in the West."
    )
    assert (
        write_opening(
            "Ana Ruiz",
            {"demographics.age": "33", "work.employment_status": "unemployed", "demographics.gender": "woman"},
        )
        == "Ana Ruiz is a 33-year-old woman looking for work."
    )


def test_rules_evaluated_in_one_query_match_one_query_per_rule():
    """The bulk evaluation (every predicate a column of one query) finds what each rule finds alone,
    and a broken predicate among good ones is still named."""
    import duckdb
    import pyarrow as pa

    table = pa.table(
        {
            "persona_id": ["a", "b", "c"],
            "name": ["John Doe", "Ann Lee", None],
            "narrative": ["As an AI I cannot help.", "She walks her dog. She reads. She cooks.", None],
            "age": [20.0, 70.0, 30.0],
        }
    )
    usable, alone = [], []
    with duckdb.connect() as con:
        con.register("candidates", table)
        for rule in RULES:
            try:
                ids = con.sql(f"SELECT persona_id FROM candidates WHERE coalesce(({rule.when}), false)").fetchall()
            except duckdb.Error:  # a rule over columns this small table lacks
                continue
            usable.append(rule)
            alone += [(pid, rule.id) for (pid,) in ids]
    assert len(usable) > 10
    found = sorted((pid, rule.id) for pid, rule, _ in evaluate_rules(table, usable))
    assert found == sorted(alone)
    assert ("a", "name_placeholder") in found and ("a", "assistant_voice") in found
    bad = Rule(id="broken", severity="error", when="no_such_column > 1", message="x")
    with pytest.raises(UserInputError, match="broken"):
        evaluate_rules(table, [*usable[:3], bad, *usable[3:]])
