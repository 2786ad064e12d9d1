"""Taxonomy mining: reading, scrubbing, revealing sentences, candidates, merging, assembling."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest

from schemas.errors import UserInputError
from schemas.mining_config import MiningConfig
from taxonomy.loader import load_taxonomy, write_taxonomy
from taxonomy.mining.assemble import MINED_ROOT_ID, assemble_taxonomy, slugify
from taxonomy.mining.candidates import Candidate, candidate_from, is_grounded, normalise_label, normalise_value
from taxonomy.mining.conversations import read_conversations
from taxonomy.mining.merge import cluster_rows, plan_merge
from taxonomy.mining.pipeline import collect_snippets
from taxonomy.mining.revealing import Snippet, disclosure_score, sample_snippets
from taxonomy.mining.scrub import luhn_valid, scrub_text
from tests.helpers.mining_samples import PLANTED, PLANTED_TEXT, SHIPPED
from workers.backend import GenerationResult
from workers.extraction import extraction_json_schema, parse_extraction


def test_scrub_replaces_every_planted_kind_and_keeps_harmless_numbers():
    counts: Counter = Counter()
    out = scrub_text(PLANTED_TEXT, counts)
    for planted, kind in PLANTED.items():
        assert planted not in out
        assert f"[{kind}]" in out
    assert "Quixote" not in out and "555" not in out and "4111" not in out and "jroe" not in out
    assert set(counts) == set(PLANTED.values())
    kept = scrub_text("I was born in 1987, I am 34, I paid $1,250 and work 40 hours; call 911.")
    assert kept == "I was born in 1987, I am 34, I paid $1,250 and work 40 hours; call 911."


def test_scrub_catches_cue_names_and_sign_offs():
    text = "Dear Alice, thanks for the help\nBest regards,\nBob Smith\nmy name praba and call me Ishmael"
    out = scrub_text(text)
    for name in ("Alice", "Bob Smith", "praba", "Ishmael"):
        assert name not in out
    assert scrub_text("Prof. Moriarty asked NAME_3 to help") == "Prof. [NAME] asked [NAME] to help"


def test_luhn():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    return path


def test_reads_openai_sharegpt_and_wildchat_shapes_keeping_user_turns_only(tmp_path):
    path = _write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            {
                "id": "secret-id-1",
                "messages": [
                    {"role": "system", "content": "be nice"},
                    {"role": "user", "content": "I am a baker."},
                    {"role": "assistant", "content": "Nice!"},
                ],
            },
            {"conversations": [{"from": "human", "value": "I love chess."}, {"from": "gpt", "value": "Cool."}]},
            {
                "conversation_hash": "abc",
                "conversation": [
                    {"role": "user", "content": "I live in Oslo.", "turn": 1},
                    {"role": "assistant", "content": None},
                ],
            },
        ],
    )
    conversations = read_conversations([path])
    assert [c.user_turns for c in conversations] == [("I am a baker.",), ("I love chess.",), ("I live in Oslo.",)]
    assert all("secret" not in c.key and len(c.key) == 16 for c in conversations)
    assert len({c.key for c in conversations}) == 3


@pytest.mark.parametrize(
    ("content", "field", "problem"),
    [
        (None, "<file>", "no such file"),
        (b"", "<file>", "is empty"),
        (b"{not json}\n", "<line>", "not valid JSON"),
        (b"\xff\xfe\x00\x01binary\n", "<line>", "not UTF-8"),
        (b"[1, 2]\n", "<line>", "is not a JSON object"),
        (b'{"text": "hello"}\n', "messages", "no 'messages'"),
        (b'{"messages": "hello"}\n', "messages", "is not a list"),
        (b'{"messages": [{"role": "narrator", "content": "x"}]}\n', "messages.0.role", "unknown role"),
        (b'{"messages": [{"role": "user", "content": 5}]}\n', "messages.0.content", "is not a string"),
        (b'{"messages": ["hi"]}\n', "messages.0", "is not an object"),
        (b"\n\n", "<file>", "holds no conversations"),
    ],
)
def test_malformed_conversation_files_name_file_line_field_and_fix(tmp_path, content, field, problem):
    path = tmp_path / "bad.jsonl"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserInputError) as err:
        read_conversations([path])
    assert err.value.field == field and problem in err.value.problem and err.value.fix
    assert str(path) in err.value.file


def test_disclosure_score_prefers_self_description_over_task_talk():
    assert disclosure_score("I'm a retired nurse and my husband loves fishing.") >= 2
    assert disclosure_score("I usually prefer calm music while I work.") >= 1
    assert disclosure_score("Write a poem about the sea.") == 0
    assert disclosure_score("I am trying to write code for my class") < disclosure_score("I teach at my school")


def test_collect_snippets_on_the_shipped_sample_is_scrubbed_sampled_and_balanced():
    snippets, funnel = collect_snippets(SHIPPED, MiningConfig(max_snippets=10))
    assert funnel["conversations"] == 639 and funnel["revealing_sentences"] > 10
    assert len(snippets) == 10 and {s.source for s in snippets} == {"wildchat", "oasst1"}
    assert all(disclosure_score(s.text) > 0 for s in snippets)
    again, _ = collect_snippets(SHIPPED, MiningConfig(max_snippets=10))
    assert again == snippets  # deterministic for a seed
    other, _ = collect_snippets(SHIPPED, MiningConfig(max_snippets=10, seed=5))
    assert other != snippets


def test_sample_snippets_interleaves_sources():
    snippets = [Snippet(f"c{i}", "big", f"I am {i}", 1) for i in range(20)] + [Snippet("d", "small", "I cook", 1)]
    picked = sample_snippets(snippets, 4, seed=0)
    assert len(picked) == 4 and sum(s.source == "small" for s in picked) == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hobbies", "hobby"),
        ("relationship statuses", "relationship status"),
        ("favoriteMusicGenres", "favorite music genre"),
        ("User's Age", "age"),
        ("job_title", "job title"),
        ("ethics", "ethics"),
        ("address 12 Main", None),
        ("email [EMAIL]", None),
        ("one two three four five six", None),
        ("the my", None),
    ],
)
def test_normalise_label(raw, expected):
    assert normalise_label(raw) == expected


def test_values_must_be_grounded_in_the_sentence_and_free_of_pii():
    sentence = "I'm 60 years old, I'm a librarian and I love to travel."
    assert is_grounded("librarian", sentence) and is_grounded("60", sentence) and is_grounded("travelling", sentence)
    assert not is_grounded("nurse", sentence) and not is_grounded("", sentence)
    assert normalise_value("jane.roe@example.org") == "" and normalise_value("Coffee Shops!") == "coffee shops"
    roots = {"work"}
    copied = candidate_from(
        "k", {"category": "work", "attribute": "occupation", "kind": "categorical", "value": "nurse"}, roots, sentence
    )
    real = candidate_from(
        "k", {"category": "bogus", "attribute": "Job Title", "kind": "weird", "value": "Librarian"}, roots, sentence
    )
    assert copied is None
    assert real == Candidate("k", "other", "job title", "text", "librarian")


def test_parse_extraction_counts_failures_instead_of_raising():
    snippet = Snippet("k", "s", "I teach piano to kids.", 1)
    good = GenerationResult(
        request_id="r",
        text='{"attributes": [{"category": "work", "attribute": "job", '
        '"kind": "categorical", "value": "teach piano"}, {"category": "work", '
        '"attribute": "x1", "kind": "text", "value": "nurse"}]}',
    )
    kept, dropped, failure = parse_extraction(good, snippet, {"work"})
    assert [c.label for c in kept] == ["job"] and dropped == 1 and failure is None
    assert (
        parse_extraction(GenerationResult(request_id="r", text='{"attr', finish_reason="length"), snippet, set())[2]
        == "truncated"
    )
    assert parse_extraction(GenerationResult(request_id="r", text="nope"), snippet, set())[2] == "unparseable"
    assert parse_extraction(GenerationResult(request_id="r", text="[]"), snippet, set())[2] == "wrong_shape"
    failed = GenerationResult(request_id="r", text="", error="boom")
    assert parse_extraction(failed, snippet, set())[2] == "backend_error"
    schema = extraction_json_schema(["work", "health"], 3)
    assert schema["properties"]["attributes"]["maxItems"] == 3
    assert schema["properties"]["attributes"]["items"]["properties"]["category"]["enum"] == ["work", "health", "other"]


def _unit(*rows: list[float]) -> np.ndarray:
    m = np.array(rows, dtype=np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_cluster_rows_links_at_the_threshold_inclusive():
    v = _unit([1, 0, 0], [0.8, 0.6, 0], [0, 1, 0], [0, 0, 1])
    assert cluster_rows(v, 0.8) == [[0, 1], [2], [3]]
    assert cluster_rows(v, 0.6) == [[0, 1, 2], [3]]  # 1-2 at 0.6 links single-link chains
    assert cluster_rows(v[:0], 0.8) == []


def test_plan_merge_merges_clusters_attaches_and_rejects_by_support():
    candidates = [
        Candidate("c1", "work", "job", "categorical", "nurse"),  # near leaf 0
        Candidate("c2", "work", "job", "categorical", "nurse"),
        Candidate("c1", "hobbies", "bird watching", "categorical", "owls"),  # new, 3 conversations
        Candidate("c2", "hobbies", "birding", "categorical", "owls"),
        Candidate("c3", "hobbies", "bird watching", "categorical", "hawks"),
        Candidate("c4", "other", "zodiac sign", "categorical", "leo"),  # new, support 1 -> rejected
        Candidate("c5", "other", "sleep chronotype", "text", "owl"),  # new, support 2, no home
        Candidate("c6", "other", "sleep chronotype", "text", ""),
    ]
    cand = _unit(
        [1, 0.05, 0, 0],
        [1, 0.05, 0, 0],
        [0, 1, 0.1, 0],
        [0, 1, 0.15, 0],
        [0, 1, 0.1, 0],
        [0, 0, 1, 0],
        [0, 0, 0.1, 1],
        [0, 0, 0.1, 1],
    )
    leaves = _unit([1, 0, 0, 0])
    nodes = _unit([0, 1, 0, 0], [1, 0, 0, 0])
    plan = plan_merge(
        candidates,
        cand,
        ["work.occupation"],
        leaves,
        ["hobbies", "work"],
        nodes,
        merge_threshold=0.9,
        attach_threshold=0.5,
        min_support=2,
    )
    assert plan.merged == {"work.occupation": {"c1", "c2"}} and plan.merged_candidates == 2
    assert [(a.label, a.support, a.home) for a in plan.added] == [
        ("bird watching", 3, "hobbies"),
        ("sleep chronotype", 2, None),
    ]
    assert plan.added[0].values == Counter({"owls": 2, "hawks": 1})
    assert [(a.label, a.support) for a in plan.rejected] == [("zodiac sign", 1)]


def test_assembled_taxonomy_round_trips_with_provenance_and_shared_values_only(tmp_path):
    seed = load_taxonomy("seed:core")
    candidates = [
        Candidate(f"k{i}", "hobbies", "bird watching", "categorical", v)
        for i, v in enumerate(["owls", "owls", "hawks", "hawks", "one rare bird"])
    ]
    candidates += [Candidate(f"m{i}", "other", "zodiac sign", "text", "") for i in range(2)]
    candidates += [Candidate(f"n{i}", "health", "sleep chronotype", "text", "") for i in range(2)]
    vectors = _unit(*[[0, 1, 0, 0]] * 5, *[[0, 0, 1, 0]] * 2, *[[0, 0, 0, 1]] * 2)
    plan = plan_merge(
        candidates, vectors, [], np.zeros((0, 4), np.float32), ["hobbies.outdoors"], _unit([0, 1, 0, 0]), 0.9, 0.5, 2
    )
    mined, placed = assemble_taxonomy(seed, plan, min_support=2, rule="merge-v1")
    assert mined.version == "1.0.0+mined.merge-v1" and seed.version == "1.0.0"
    birds = mined.attributes()[placed["bird watching"]]
    assert birds.id == "hobbies.outdoors.bird_watching" and birds.kind == "categorical"
    assert birds.values == pytest.approx({"hawks": 0.4, "owls": 0.4, "other": 0.2})  # single mention pooled
    assert birds.provenance.source == "mined" and birds.provenance.support == 5
    assert placed["zodiac sign"] == f"{MINED_ROOT_ID}.zodiac_sign"
    assert placed["sleep chronotype"] == "health.emerging.sleep_chronotype"
    path = tmp_path / "mined.yaml"
    write_taxonomy(mined, path)
    again = load_taxonomy(str(path))
    assert again.attributes().keys() == mined.attributes().keys() and again.content_hash
    assert len(again.attributes()) == len(seed.attributes()) + 3
    assert slugify("9 lives") == "a_9_lives"
