"""Malformed input of every kind: one line naming the file, the field and the fix; exit 2; nothing written.

Each case runs the real CLI entry point in this process (the same `main` the console script calls).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from cli.main import main
from schemas.config import MAX_CONFIG_BYTES

GOOD_CONFIG = {"name": "bad-input", "population": 20, "seed": 1, "deep_attributes": 4}
CONVERSATION = b'{"messages": [{"role": "user", "content": "I am a nurse."}]}\n'


def config_case(**changes) -> dict:
    return {**GOOD_CONFIG, **changes}


def preset(tables: list[dict]) -> str:
    return yaml.safe_dump({"name": "p", "marginals": tables})


AGE_TABLE = {"attributes": ["demographics.age_band"], "citation": "t", "shares": {"18-24": 0.5, "25-34": 0.5}}

# name -> (what to write as the input file (bytes, str or dict), command after `populace`, the field named)
CONFIGS = {
    "config missing": (None, "sample", "<file>"),
    "config not YAML": ("population: [1, 2\n", "sample", "line"),
    "config not UTF-8": (b"name: \xff\xfe\n", "sample", "<file>"),
    "config binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "sample", "<file>"),
    "config empty": (b"", "sample", "is empty"),
    "config only whitespace and comments": ("\n   \n# nothing here\n", "build", "is empty"),
    "config only whitespace": (" \t\n\n", "sample", "is empty"),
    "config is a list": ("- 1\n- 2\n", "sample", "<root>"),
    "config huge": ("# x\n" * (MAX_CONFIG_BYTES // 4 + 1), "sample", "<file>"),
    "unknown field": (config_case(populaton=3), "sample", "populaton"),
    "wrong type": (config_case(population="many"), "sample", "population"),
    "population zero": (config_case(population=0), "sample", "population"),
    "negative seed": (config_case(seed=-1), "sample", "seed"),
    "deep attributes too many": (config_case(deep_attributes=500), "sample", "deep_attributes"),
    "name escapes the output folder": (config_case(name="../../etc"), "sample", "name"),
    "shares do not sum": (
        config_case(strata=[{"attribute": "demographics.sex", "shares": {"female": 0.7, "male": 0.7}}]),
        "sample",
        "strata",
    ),
    "stratum attribute unknown": (
        config_case(strata=[{"attribute": "demographics.shoe_size", "shares": {"a": 1.0}}]),
        "sample",
        "demographics.shoe_size",
    ),
    "stratum value outside the domain": (
        config_case(strata=[{"attribute": "demographics.sex", "shares": {"robot": 1.0}}]),
        "sample",
        "robot",
    ),
    "strata repeat an attribute": (
        config_case(
            strata=[
                {"attribute": "demographics.sex", "shares": {"female": 1.0}},
                {"attribute": "demographics.sex", "shares": {"male": 1.0}},
            ]
        ),
        "sample",
        "strata",
    ),
    "unknown seed taxonomy": (config_case(taxonomy="seed:nope"), "sample", "taxonomy"),
    "taxonomy file missing": (config_case(taxonomy="/nonexistent/taxonomy.yaml"), "sample", "taxonomy"),
    "unknown preset": (
        config_case(quotas={"preset": "mars_adults", "variables": ["demographics.sex"]}),
        "sample",
        "quotas.preset",
    ),
    "preset variable not in the preset": (
        config_case(quotas={"preset": "us_adults", "variables": ["hobbies.main_hobby"]}),
        "sample",
        "quotas",
    ),
    "joint shares do not sum": (
        config_case(quotas={"joint": [{"values": {"demographics.sex": "female"}, "share": 0.2}]}),
        "sample",
        "quotas",
    ),
    "impossible minimum per cell": (
        config_case(
            population=3, quotas={"preset": "us_adults", "variables": ["demographics.region"], "min_per_cell": 2}
        ),
        "sample",
        "min_per_cell",
    ),
    "unknown backend": (config_case(backend={"kind": "telepathy"}), "sample", "backend.kind"),
    "openai backend without url": (config_case(backend={"kind": "openai", "model": "m"}), "sample", "backend"),
    "bad dedup threshold": (config_case(dedup={"minhash_threshold": 1.5}), "sample", "dedup"),
    "llama.cpp model file missing": (
        config_case(backend={"model": "/nonexistent/model.gguf"}),
        "build",
        "backend.model",
    ),
    "vllm model folder without config.json": (
        config_case(backend={"kind": "vllm", "model": "/"}),
        "build",
        "backend.model",
    ),
}

TAXONOMY_OK = {
    "name": "t",
    "version": "1",
    "categories": [
        {
            "id": "a",
            "label": "A",
            "attributes": [{"id": "a.x", "label": "X", "kind": "categorical", "values": {"p": 0.5, "q": 0.5}}],
        }
    ],
}


def taxonomy_case(**attribute_changes) -> dict:
    attribute = {**TAXONOMY_OK["categories"][0]["attributes"][0], **attribute_changes}
    return {**TAXONOMY_OK, "categories": [{**TAXONOMY_OK["categories"][0], "attributes": [attribute]}]}


TAXONOMIES = {
    "taxonomy missing": (None, "taxonomy validate", "taxonomy"),
    "taxonomy empty": (b"", "taxonomy validate", "is empty"),
    "taxonomy only whitespace": (b"  \n\t\n", "taxonomy validate", "is empty"),
    "taxonomy not UTF-8": (b"name: \xff\n", "taxonomy validate", "<file>"),
    "taxonomy weights do not sum": (taxonomy_case(values={"p": 0.5, "q": 0.6}), "taxonomy validate", "a.x.values"),
    "taxonomy empty domain": (taxonomy_case(values={}), "taxonomy validate", "a.x"),
    "taxonomy unknown key": (taxonomy_case(colour="red"), "taxonomy validate", "colour"),
    "taxonomy unknown reference": (
        taxonomy_case(applicable_when=[{"attribute": "a.nope", "op": "==", "value": "p"}]),
        "taxonomy validate",
        "a.x",
    ),
    "taxonomy depends on itself": (
        taxonomy_case(depends_on={"attribute": "a.x", "table": {"p": {"p": 1.0}, "q": {"q": 1.0}}}),
        "taxonomy validate",
        "a.x",
    ),
    "taxonomy without version": (
        {k: v for k, v in TAXONOMY_OK.items() if k != "version"},
        "taxonomy validate",
        "version",
    ),
}

PRESETS = {
    "preset empty": (b"", "sample --preset", "is empty"),
    "preset only whitespace": (b"\n \n", "sample --preset", "is empty"),
    "preset not YAML": ("marginals: [\n", "sample --preset", "<file>"),
    "preset unknown attribute": (
        preset([{"attributes": ["demographics.shoe_size"], "citation": "t", "shares": {"a": 1.0}}]),
        "sample --preset",
        "attributes",
    ),
    "preset shares do not sum": (
        preset([{**AGE_TABLE, "shares": {"18-24": 0.5, "25-34": 0.7}}]),
        "sample --preset",
        "shares",
    ),
    "preset value outside the domain": (
        preset([{**AGE_TABLE, "shares": {"18-24": 0.5, "7-9": 0.5}}]),
        "sample --preset",
        "7-9",
    ),
    "preset unknown key": (
        yaml.safe_dump({"name": "p", "marginals": [AGE_TABLE], "extra": 1}),
        "sample --preset",
        "extra",
    ),
}

CONVERSATIONS = {
    "conversations missing": (None, "mine", "<file>"),
    "conversations empty": (b"", "mine", "<file>"),
    "conversations only whitespace": (b"\n  \n\n", "mine", "<file>"),
    "conversations not JSON": (b"{nope\n", "mine", "<line>"),
    "conversations binary": (b"\x00\x01\x02\xff\n", "mine", "<line>"),
    "conversations wrong shape": (b'{"turns": []}\n', "mine", "messages"),
    "conversations unknown role": (b'{"messages": [{"role": "narrator", "content": "x"}]}\n', "mine", "role"),
    "conversations content not text": (b'{"messages": [{"role": "user", "content": 5}]}\n', "mine", "content"),
    "conversations good but out not yaml": (CONVERSATION, "mine --out-json", "--out"),
}

CASES = {**CONFIGS, **TAXONOMIES, **PRESETS, **CONVERSATIONS}


def write_input(path: Path, content: object) -> None:
    if content is None:
        return
    if isinstance(content, dict):
        content = yaml.safe_dump(content)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


def argv_for(command: str, source: Path, out: Path, tmp_path: Path) -> list[str]:
    if command == "sample":
        return ["sample", "--config", str(source), "--out", str(out)]
    if command == "build":
        return ["build", "--config", str(source), "--out", str(out)]
    if command == "sample --preset":
        config = tmp_path / "config.yaml"
        config.write_text(
            yaml.safe_dump(config_case(quotas={"preset": str(source), "variables": ["demographics.age_band"]}))
        )
        return ["sample", "--config", str(config), "--out", str(out)]
    if command == "taxonomy validate":
        return ["taxonomy", "validate", str(source)]
    if command == "mine":
        return ["mine", "--conversations", str(source), "--out", str(out / "mined.yaml")]
    return ["mine", "--conversations", str(source), "--out", str(out / "mined.json")]


def test_there_are_at_least_forty_kinds_of_bad_input():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_one_line_with_file_field_and_fix_exit_2_and_nothing_written(
    case, tmp_path, monkeypatch, capsys
):
    content, command, field = CASES[case]
    source = tmp_path / ("input.jsonl" if command.startswith("mine") else "input.yaml")
    write_input(source, content)
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.setattr(sys, "argv", ["populace", *argv_for(command, source, out, tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and "(fix: " in lines[0] and field in lines[0], lines[0]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*before, *(["config.yaml"] if "preset" in command else [])]
    )


def test_our_errors_cross_process_boundaries_whole():
    """Ray and Prefect pickle a worker's or a task's error: it must arrive with its fields and message."""
    import pickle

    from schemas.errors import UserInputError
    from workers.worker_crash import WorkerCrashError

    error = UserInputError("run.yaml", "backend.model", "'x' is neither a packaged model nor a file", "use a path")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.file, copy.field, copy.problem, copy.fix, str(copy)) == (
        error.file,
        error.field,
        error.problem,
        error.fix,
        str(error),
    )
    crash = WorkerCrashError("propose round 1", "SIGILL", 2, "actor died")
    copy = pickle.loads(pickle.dumps(crash))
    assert (copy.stage, copy.signal_name, copy.restarts, str(copy)) == ("propose round 1", "SIGILL", 2, str(crash))
