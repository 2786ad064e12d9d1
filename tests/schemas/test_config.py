import json
import subprocess
import sys

import pytest

from schemas.config import RunConfig, load_run_config
from schemas.errors import UserInputError
from tests.helpers.paths import REPO
from tests.helpers.processes import free_port

POPULACE = [sys.executable, "-m", "cli.main"]


def test_demo_config_loads_and_round_trips(tmp_path):
    cfg = load_run_config(REPO / "configs" / "demo.yaml")
    assert cfg.population == 12 and cfg.backend.model == "smollm2-135m-instruct"
    copy = tmp_path / "copy.yaml"
    copy.write_text(cfg.to_yaml())
    assert load_run_config(copy) == cfg
    assert load_run_config(copy).fingerprint() == cfg.fingerprint()


def test_the_fingerprint_follows_what_shapes_the_corpus_not_how_requests_wait():
    cfg = load_run_config(REPO / "configs" / "demo.yaml")
    waits = cfg.backend.model_copy(update={"retry_backoff_s": 2.0, "placement_timeout_s": 5.0})
    assert cfg.model_copy(update={"backend": waits}).fingerprint() == cfg.fingerprint()
    hotter = cfg.backend.model_copy(update={"temperature": cfg.backend.temperature + 0.1})
    assert cfg.model_copy(update={"backend": hotter}).fingerprint() != cfg.fingerprint()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("population: 10\npopulaton: 5\n", "populaton"),
        ("population: -1\n", "population"),
        ("population: many\n", "population"),
        ("strata:\n  - attribute: demographics.gender\n    shares: {woman: 0.7, man: 0.7}\n", "strata.0.shares"),
        ("backend:\n  kind: llama_cpp\n  temprature: 0.1\n", "backend.temprature"),
        ("- just\n- a list\n", "<root>"),
        ("population: [unclosed\n", "line"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserInputError) as err:
        load_run_config(path)
    assert str(path) in str(err.value)
    assert err.value.field.startswith(field)
    assert err.value.fix


def test_cli_bad_config_exits_2_and_writes_nothing(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("population: 10\nseeed: 3\n")
    out = tmp_path / "run"
    proc = subprocess.run(
        [*POPULACE, "build", "--config", str(path), "--out", str(out)], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 2
    assert "seeed" in proc.stderr and str(path) in proc.stderr
    assert not out.exists()


def test_cli_unknown_stratum_value_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("strata:\n  - attribute: demographics.gender\n    shares: {woman: 0.5, robot: 0.5}\n")
    proc = subprocess.run(
        [*POPULACE, "preview", "--config", str(path), "--n", "1"], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 2
    assert "robot" in proc.stderr


def test_cli_missing_taxonomy_exits_2_and_writes_nothing(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(f"taxonomy: {tmp_path / 'nope.yaml'}\n")
    out = tmp_path / "run"
    proc = subprocess.run(
        [*POPULACE, "build", "--config", str(path), "--out", str(out)], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 2 and "nope.yaml" in proc.stderr
    assert not out.exists()


def test_config_schema_command_prints_json_schema():
    proc = subprocess.run([*POPULACE, "config", "schema"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert schema == RunConfig.model_json_schema()
    assert schema["additionalProperties"] is False


def test_config_reference_in_docs_is_current():
    from schemas.config_reference import config_reference

    committed = (REPO / "docs" / "config-reference.md").read_text()
    assert committed == config_reference(), "run: populace config reference > docs/config-reference.md"
    assert "`max_backfill_tokens`" in committed and "### MiningConfig" in committed


@pytest.mark.parametrize(
    ("embedder", "problem"),
    [
        ("{kind: static, model: /nonexistent/static-model}", "not a static embedder folder"),
        ("{kind: transformer, model: /nonexistent/minilm}", "no such model folder"),
    ],
)
def test_cli_missing_embedder_folder_exits_2_and_writes_nothing(tmp_path, embedder, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(f"population: 4\ndedup:\n  embedder: {embedder}\n")
    out = tmp_path / "run"
    proc = subprocess.run(
        [*POPULACE, "build", "--config", str(path), "--out", str(out)], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "dedup.embedder.model" in proc.stderr and problem in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 3  # one message (wrapped at most), not a traceback
    assert not out.exists()


def test_cli_missing_option_is_a_usage_error_not_a_traceback():
    proc = subprocess.run([*POPULACE, "build"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert "Missing option '--config'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("address", "problem"), [("127.0.0.1:{port}", "nothing answers at"), ("no-port-here", "is not host:port")]
)
def test_cli_unreachable_ray_address_exits_2_at_once_and_writes_nothing(tmp_path, address, problem):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            *POPULACE,
            "build",
            "--config",
            str(REPO / "configs/demo.yaml"),
            "--out",
            str(out),
            "--ray-address",
            address.format(port=free_port()),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )  # ray.init alone retries for minutes
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--ray-address" in proc.stderr and problem in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_init_writes_the_examples_and_refuses_to_overwrite_without_force(tmp_path):
    from cli.project_init import EXAMPLES, init_project

    written = init_project(tmp_path / "project")
    assert sorted(str(p.relative_to(tmp_path / "project")) for p in written) == sorted(EXAMPLES)
    assert load_run_config(tmp_path / "project/configs/demo.yaml").name == "demo"
    (tmp_path / "project/configs/demo.yaml").write_text("name: mine\n")
    proc = subprocess.run([*POPULACE, "init", str(tmp_path / "project")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "already exists" in proc.stderr and "--force" in proc.stderr
    assert (tmp_path / "project/configs/demo.yaml").read_text() == "name: mine\n"  # nothing replaced
    init_project(tmp_path / "project", overwrite=True)
    assert load_run_config(tmp_path / "project/configs/demo.yaml").name == "demo"


def test_reference_corpora_come_from_the_given_folder_or_the_environment(tmp_path, monkeypatch):
    from corpus.evaluate_run import REFERENCE_DIR_ENV, default_references

    (tmp_path / "tinytroupe.jsonl").write_text("{}\n")
    (tmp_path / "unknown.jsonl").write_text("{}\n")
    assert [(r.name, r.text_field) for r in default_references(tmp_path)] == [("tinytroupe", "record.persona")]
    monkeypatch.setenv(REFERENCE_DIR_ENV, str(tmp_path))
    assert [r.path for r in default_references()] == [tmp_path / "tinytroupe.jsonl"]
    monkeypatch.setenv(REFERENCE_DIR_ENV, str(tmp_path / "empty"))
    assert default_references() == []
