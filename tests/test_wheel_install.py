"""The built wheel, installed into a fresh virtual environment, works from a folder outside the checkout.

Builds the wheel from the working tree, installs it (with the portable llama.cpp wheel the checkout
already compiled) into a new venv, and runs what a user runs there: `init`, `sample`, a 2-persona
`build` on the embedded model, `dedup` with every layer, `evaluate` and `query`; then every config
the run's dataset card declares loads with `datasets`. Nothing is read from the source tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.paths import REPO

pytestmark = pytest.mark.llm


def run(command: list[str], cwd: Path, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (command, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def tracked_tree(destination: Path) -> Path:
    """The working tree's files git knows (tracked or not ignored), symlinks kept: what a clone would hold."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source, target = REPO / name, destination / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return destination


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("wheel")
    source = tracked_tree(root / "source")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(root / "dist"), str(source)], root, env
    )
    wheel = next((root / "dist").glob("populace-*.whl"))
    venv = root / "env"
    run([sys.executable, "-m", "venv", str(venv)], root, env)
    python = venv / "bin" / "python"
    # The checkout's portable llama.cpp wheel (compiled once per machine), then populace and its dependencies.
    run([str(python), str(REPO / "scripts" / "install_llama_cpp.py")], root, env, timeout=1800)
    run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], root, env, timeout=1800)
    env = {
        **env,
        "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}",
        "PREFECT_HOME": str(root / "prefect"),
        "POPULACE_CACHE": str(root / "cache"),
    }
    work = root / "work"
    work.mkdir()
    return work, env


def test_the_wheel_imports_from_its_environment_and_ships_its_data(installed):
    work, env = installed
    where = run(
        [
            "python",
            "-c",
            "import flows, taxonomy.presets as p, taxonomy.names as n, "
            "dedup.embedders.static as s; print(flows.__file__); print(p.PRESET_DIR); print(n.NAMES_DIR); "
            "print(s.DEFAULT_MODEL_DIR)",
        ],
        work,
        env,
    ).stdout.split()
    assert all("site-packages" in line and not line.startswith(str(REPO)) for line in where), where


def test_a_user_folder_runs_every_command_from_the_installed_wheel(installed, tmp_path):
    from datasets import load_dataset

    work, env = installed
    init = run(["populace", "init", "."], work, env)
    assert "configs/demo.yaml" in init.stdout and (work / "prefect.yaml").is_file()
    assert (work / "infra/prefect/process-work-pool.json").is_file()

    run(["populace", "sample", "--config", "configs/demo.yaml", "--n", "6", "--out", "runs/sample"], work, env)
    assert json.loads((work / "runs/sample/plan.json").read_text())

    run(["populace", "build", "--config", "configs/demo.yaml", "--n", "2", "--out", "runs/two"], work, env)
    manifest = json.loads((work / "runs/two/manifest.json").read_text())
    assert manifest["requested"] == 2 and 1 <= manifest["produced"] <= 2  # (backfill may replace a reject)

    # Every dedup layer on a corpus with an exact copy and a near copy of the first narrative.
    narrative = run(
        ["populace", "query", "runs/two", "select narrative from personas limit 1", "--format", "json"], work, env
    ).stdout
    text = json.loads(narrative)[0]["narrative"]
    rows = [text, text, text.replace(".", ";", 1) + " Indeed.", "A completely different short text about boats."]
    (work / "texts.jsonl").write_text("".join(json.dumps({"body": t}) + "\n" for t in rows))
    run(["populace", "dedup", "texts.jsonl", "--text-field", "body", "--out", "runs/dedup"], work, env)
    summary = json.loads((work / "runs/dedup/summary.json").read_text())
    layers = summary["removed_by_layer"]
    assert summary["records"] == 4 and summary["removed"] == 2 and layers.pop("exact") == 1, summary
    assert list(layers) in (["minhash"], ["semantic"])  # the near copy: shingles, or the packaged embedder
    assert all(summary["config"][layer] for layer in ("exact", "minhash", "semantic"))
    assert "cosine_0.9" in summary["personahub_rates"]

    evaluation = json.loads(run(["populace", "evaluate", "runs/two", "--json"], work, env).stdout)
    assert evaluation["corpora"] and (work / "runs/two/evaluation/evaluation.json").is_file()

    count = run(["populace", "query", "runs/two", "select count(*) as n from personas", "--format", "csv"], work, env)
    assert count.stdout.splitlines()[1] == str(manifest["produced"])

    card = yaml.safe_load((work / "runs/two/README.md").read_text().split("---")[1])
    for config in card["configs"]:
        rows = load_dataset(
            str(work / "runs/two"), config["config_name"], split="train", cache_dir=str(tmp_path / "hf")
        )
        assert len(rows) == manifest["produced" if config["config_name"] == "personas" else "rejected"]
