"""`populace mine` end to end on the shipped sample, the embedded model, Prefect and Ray.

Planted PII must appear in no output: not the taxonomy, the diff reports, the console, or
Prefect's own database and logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from taxonomy.loader import load_taxonomy
from tests.helpers.mining_samples import PLANTED, PLANTED_TEXT, SHIPPED
from tests.helpers.paths import REPO

FRAGMENTS = ["Quixote", "555-0199", "4111 1111", "jroe", "Evergreen", "3704 0044", "10.21.7.144"]


def run_mine(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect_home")}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "mine", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=900,
    )


def planted_conversations(path: Path) -> Path:
    rows = [
        {
            "id": f"planted-{i}",
            "source": "planted",
            "messages": [
                {"role": "user", "content": f"{PLANTED_TEXT} I work as a nurse and my daughter plays chess {i}."},
                {"role": "assistant", "content": "Thanks for sharing."},
                {"role": "user", "content": "My husband Jonathan Quixote loves fishing at 742 Evergreen Terrace."},
            ],
        }
        for i in range(3)
    ]
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    return path


@pytest.mark.llm
def test_mine_writes_a_valid_taxonomy_and_report_with_no_planted_pii_anywhere(tmp_path):
    planted = planted_conversations(tmp_path / "planted.jsonl")
    out = tmp_path / "out" / "mined.yaml"
    config = tmp_path / "mine.yaml"
    config.write_text(
        "max_snippets: 6\nmax_snippets_per_conversation: 2\nbackend:\n  temperature: 0\n"
        "  max_tokens: 96\n  batch_size: 3\n"
    )
    result = run_mine(
        tmp_path,
        *[a for p in [*SHIPPED, planted] for a in ("--conversations", str(p))],
        "--config",
        str(config),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    mined = load_taxonomy(str(out))
    seed = load_taxonomy("seed:core")
    report = json.loads((tmp_path / "out" / "mined.diff.json").read_text())
    funnel, counts = report["funnel"], report["counts"]
    assert funnel["conversations"] == 639 + 3 and funnel["snippets_sent"] == 6
    assert {"EMAIL", "PHONE", "URL", "ADDRESS", "CARD", "ID", "NAME", "IP", "HANDLE"} <= set(funnel["pii_scrubbed"])
    assert counts["added"] == len(mined.attributes()) - len(seed.attributes())
    assert counts["merged_candidates"] + sum(a["support"] for a in report["added"]) <= counts["candidates"]
    assert report["settings"]["merge_threshold"] == 0.8 and report["settings"]["merge_rule_version"] == "merge-v1"
    assert mined.version.startswith(seed.version) and report["to"]["hash"] == mined.content_hash
    for added in report["added"]:
        attribute = mined.attributes()[added["id"]]
        assert attribute.provenance.support >= 2 or not added["new"]
    assert (tmp_path / "out" / "mined.diff.md").read_text().startswith("# Mining report")
    outputs = [result.stdout, result.stderr]
    outputs += [p.read_bytes().decode("utf-8", "replace") for p in (tmp_path / "out").rglob("*") if p.is_file()]
    outputs += [p.read_bytes().decode("latin-1") for p in (tmp_path / "prefect_home").rglob("*") if p.is_file()]
    assert len(outputs) > 4
    for text in outputs:
        for secret in [*PLANTED, *FRAGMENTS]:
            assert secret not in text


@pytest.mark.parametrize(
    ("name", "content", "field"),
    [
        ("binary.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00", "<line>"),
        ("empty.jsonl", b"", "<file>"),
        ("shape.jsonl", b'{"turns": []}\n', "messages"),
    ],
)
def test_mine_refuses_bad_conversation_files_with_exit_2_and_writes_nothing(tmp_path, name, content, field):
    bad = tmp_path / name
    bad.write_bytes(content)
    out = tmp_path / "out" / "mined.yaml"
    result = run_mine(tmp_path, "--conversations", str(bad), "--out", str(out))
    assert result.returncode == 2
    assert f"{bad}" in result.stderr and f": {field}:" in result.stderr and "fix:" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.llm
def test_mine_flow_runs_on_an_openai_compatible_server(prefect_harness, local_ray, llama_chat_server, tmp_path):
    from flows.mine import mine_taxonomy
    from schemas.config import BackendConfig
    from schemas.mining_config import MiningConfig

    planted = planted_conversations(tmp_path / "planted.jsonl")
    backend = BackendConfig(
        kind="openai", base_url=llama_chat_server, model="smollm2", temperature=0, max_tokens=96, batch_size=2
    )
    cfg = MiningConfig(max_snippets=4, min_support=1, backend=backend)
    out = tmp_path / "mined.yaml"
    report = mine_taxonomy([str(SHIPPED[1]), str(planted)], "seed:core", str(out), cfg)
    funnel = report["funnel"]
    assert report["settings"]["backend"] == "openai" and funnel["snippets_sent"] == 4
    # The server answered every sentence under the schema; an answer may still be cut at max_tokens
    # (what the model writes decides that), but none may be an error or unreadable JSON.
    assert funnel["prompt_tokens"] > 0 and funnel["completion_tokens"] > 0
    assert set(funnel["extraction_failures"]) <= {"truncated"}
    mined = load_taxonomy(str(out))
    assert report["counts"]["added"] == len(mined.attributes()) - len(load_taxonomy("seed:core").attributes())
    for secret in [*PLANTED, *FRAGMENTS]:
        assert secret not in out.read_text() and secret not in json.dumps(report)


def test_mine_refuses_a_config_whose_embedder_folder_is_missing(tmp_path):
    config = tmp_path / "mining.yaml"
    config.write_text("embedder: {kind: static, model: /nonexistent/static-model}\n")
    out = tmp_path / "out" / "mined.yaml"
    result = run_mine(
        tmp_path,
        "--conversations",
        str(REPO / "data/conversations/oasst1.jsonl"),
        "--config",
        str(config),
        "--out",
        str(out),
    )
    assert result.returncode == 2
    assert str(config) in result.stderr and "embedder.model" in result.stderr and "fix:" in result.stderr
    assert not (tmp_path / "out").exists()
