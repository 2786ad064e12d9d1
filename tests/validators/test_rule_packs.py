"""Every shipped rule: one case that triggers it, and the clean persona that passes them all."""

from __future__ import annotations

import json
import subprocess
import sys

import orjson
import pytest

from schemas.records import Skeleton
from taxonomy.loader import load_taxonomy
from tests.helpers.paths import REPO
from validators.engine import validate_batch
from validators.rule_pack import load_rule_pack

TAXONOMY = load_taxonomy("seed:core")
RULES = load_rule_pack()
CLEAN_FACTS = {
    "demographics.age": "45",
    "demographics.marital_status": "married",
    "demographics.household_size": "4",
    "education.highest_level": "bachelor's degree",
    "work.employment_status": "employed full-time",
    "work.occupation": "nurse",
    "relationships.children": "teenage children",
    "finances.household_income": "$75k-$100k",
}
CLEAN_NAME = "Dana Reyes"
# What the LLM writes: the continuation of "Dana Reyes is a 45-year-old nurse."
CLEAN_NARRATIVE = (
    "Dana spends her mornings at the clinic and her evenings in the garden. "
    "She grows tomatoes for the whole street and keeps a careful budget for the family."
)

# rule id -> (fact overrides, sampled name, continuation); None keeps the clean value.
TRIGGERS = {
    "age_vs_education": (
        {
            "demographics.age": "20",
            "education.highest_level": "master's degree",
            "relationships.children": "young children",
        },
        None,
        None,
    ),
    "doctorate_too_young": (
        {"demographics.age": "24", "education.highest_level": "doctorate", "relationships.children": "no children"},
        None,
        None,
    ),
    "retired_too_young": (
        {"demographics.age": "30", "work.employment_status": "retired", "relationships.children": "young children"},
        None,
        None,
    ),
    "student_late_in_life": (
        {"demographics.age": "70", "work.employment_status": "student", "relationships.children": "adult children"},
        None,
        None,
    ),
    "licensed_profession_without_degree": ({"work.occupation": "lawyer"}, None, None),
    "graduate_job_without_degree": ({"education.highest_level": "high school or less"}, None, None),
    "adult_children_too_young": ({"demographics.age": "30", "relationships.children": "adult children"}, None, None),
    "teenage_children_too_young": ({"demographics.age": "26"}, None, None),
    "widowed_very_young": (
        {
            "demographics.age": "23",
            "demographics.marital_status": "widowed",
            "relationships.children": "young children",
        },
        None,
        None,
    ),
    "children_in_one_person_household": (
        {"demographics.household_size": "1", "demographics.marital_status": "divorced"},
        None,
        None,
    ),
    "married_living_alone": ({"demographics.household_size": "1", "relationships.children": "no children"}, None, None),
    "married_in_single_parent_household": ({"demographics.household_type": "single mother family"}, None, None),
    "unemployed_top_income": (
        {"work.employment_status": "unemployed", "work.occupation": None, "finances.household_income": "over $150k"},
        None,
        None,
    ),
    "retiree_job_details": (
        {
            "demographics.age": "70",
            "work.employment_status": "retired",
            "work.occupation": None,
            "relationships.children": "adult children",
        },
        None,
        CLEAN_NARRATIVE + " She is working at the library on Saturdays.",
    ),
    "name_placeholder": ({}, "John Doe", None),
    "narrative_placeholder": ({}, None, CLEAN_NARRATIVE + " She lives in [City] with her family."),
    "narrative_repeats_itself": ({}, None, "She " + "works works works works. " * 12),
    "repeated_sentence": (
        {},
        None,
        CLEAN_NARRATIVE + " She grows tomatoes for the whole street and keeps a careful budget for the family.",
    ),
    "assistant_voice": (
        {},
        None,
        "As an AI language model, I cannot describe Dana Reyes, but she likes her garden and the clinic.",
    ),
    "leaked_trait_labels": ({}, None, CLEAN_NARRATIVE + " Her conscientiousness is high."),
    "leaked_raw_numbers": ({}, None, CLEAN_NARRATIVE + " Her file is 12345678."),
    "prompt_echo": ({}, None, CLEAN_NARRATIVE + " These facts are fixed and she likes them."),
    "contact_details": ({}, None, CLEAN_NARRATIVE + " Reach her at dana.reyes@example.org or (415) 555-0199."),
    "narrative_lists_the_facts": (
        {},
        None,
        "Dana Reyes. Age: 45. Occupation: nurse. Education: bachelor's degree. She likes the garden.",
    ),
    "not_english": (
        {},
        None,
        "Dana Reyes 每天早上在诊所工作，晚上在花园里种番茄。"
        "她为整条街的邻居种菜，并且仔细地管理家庭的预算和开支。"
        "她喜欢安静的夜晚和周末的长途散步，也常常和孩子们一起做饭、读书、聊天。",
    ),
    "single_sentence": (
        {},
        None,
        "Dana spends her mornings at the clinic and her evenings in the garden growing tomatoes for the whole street",
    ),
    "narrative_first_person": (
        {},
        None,
        "I am Dana Reyes. I spend my mornings at the clinic and my evenings in the garden.",
    ),
    "markup_in_narrative": (
        {},
        None,
        "**Dana** spends her mornings at the clinic. She grows tomatoes for the whole street.",
    ),
    "narrative_meta_talk": ({}, None, CLEAN_NARRATIVE + " This persona is a fictional character."),
    "feedback_echo": ({}, None, CLEAN_NARRATIVE + " She keeps the age and writes in the third person."),
    "opening_repeated": ({}, None, "Dana Reyes is a 45-year-old nurse at the clinic. " + CLEAN_NARRATIVE),
}


def check(facts_override: dict, name: str | None, narrative: str | None) -> dict[str, bool]:
    facts = {**CLEAN_FACTS, **facts_override}
    facts = {k: v for k, v in facts.items() if v is not None}
    skeleton = Skeleton(persona_id="p-0", slot=0, stratum="all", attributes=facts, name=name or CLEAN_NAME)
    text = orjson.dumps({"narrative": narrative or CLEAN_NARRATIVE}).decode()
    _, verdicts = validate_batch([(skeleton, text)], TAXONOMY, RULES, 0)
    return {v["check"]: v["passed"] for v in verdicts.to_pylist()}


def test_clean_persona_passes_every_rule():
    results = check({}, None, None)
    assert len(results) == len(RULES) + 9  # schema, applicable_when and seven fidelity checks
    assert all(results.values()), [k for k, ok in results.items() if not ok]


def test_every_shipped_rule_has_a_trigger_case():
    assert {r.id for r in RULES} == set(TRIGGERS)
    assert len(RULES) >= 25


@pytest.mark.parametrize("rule_id", sorted(TRIGGERS))
def test_rule_triggers(rule_id):
    results = check(*TRIGGERS[rule_id])
    if not results.get("schema", True):
        pytest.fail(f"trigger case for {rule_id} does not even parse")
    assert results[f"rule:{rule_id}"] is False


def test_rules_list_command():
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "rules", "list", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    rows = json.loads(proc.stdout)
    assert {r["pack"] for r in rows} == {"builtin", "consistency", "quality"}
    assert {r["id"] for r in rows} >= {"schema", "fidelity:age", *TRIGGERS}
