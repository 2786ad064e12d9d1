"""Kill the build with SIGKILL at random moments, rerun the same command, and get the uninterrupted corpus.

Deterministic generation (temperature 0, fixed seed, a clean llama.cpp state per request) makes
an uninterrupted run the reference: after every kill, each shard on disk must be whole, and the
final corpus must hold exactly the reference's persona ids and reject ids, none twice, none lost.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from schemas.config import BackendConfig
from tests.helpers.configs import tiny_config
from tests.helpers.paths import REPO
from tests.helpers.processes import process_table

pytestmark = pytest.mark.llm

KILLS = 3


def build_command(config: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "cli.main", "build", "--config", str(config), "--out", str(out)]


def kill_build_after(config: Path, out: Path, seconds: float) -> bool:
    """Start the build, SIGKILL it and everything it started after `seconds`; True if it was still running."""
    proc = subprocess.Popen(
        build_command(config, out),
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        # The build and everything it started: Ray keeps some of its processes in other groups.
        for pid in [p.pid for p in process_table() if p.session == proc.pid]:
            with contextlib.suppress(ProcessLookupError):  # it may have gone with the others
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        return True


def slots_of(out: Path) -> tuple[list[str], list[str]]:
    personas = [
        i
        for p in sorted((out / "personas").glob("part-*.parquet"))
        for i in pq.read_table(p, columns=["persona_id"]).column("persona_id").to_pylist()
    ]
    rejects = [
        i
        for p in sorted((out / "rejects").glob("part-*.parquet"))
        for i in pq.read_table(p, columns=["persona_id"]).column("persona_id").to_pylist()
    ]
    return personas, rejects


def every_shard_is_whole(out: Path) -> int:
    shards = list(out.rglob("part-*.parquet"))
    for shard in shards:
        pq.read_table(shard)  # raises on a torn file
    return len(shards)


def test_sigkill_at_random_points_then_rerun_gives_the_uninterrupted_corpus(tmp_path):
    cfg = tiny_config(
        name="crash",
        population=4,
        shard_size=1,
        max_backfill_waves=1,
        backend=BackendConfig(temperature=0.0, max_tokens=160, batch_size=1).model_dump(),
    )
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))

    reference = tmp_path / "reference"
    started = time.monotonic()
    done = subprocess.run(build_command(config, reference), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    duration = time.monotonic() - started
    expected_personas, expected_rejects = slots_of(reference)
    assert expected_personas

    crashed = tmp_path / "crashed"
    rng = random.Random(20261126)
    # Spread over the run: start-up, proposing, validating, deduplicating and writing all get a chance.
    moments = sorted(rng.uniform(0.15, 0.95) * duration for _ in range(KILLS))
    killed = 0
    for seconds in moments:
        killed += kill_build_after(config, crashed, seconds)
        every_shard_is_whole(crashed)
    assert killed >= 1
    final = subprocess.run(build_command(config, crashed), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-3000:]

    personas, rejects = slots_of(crashed)
    assert len(personas) == len(set(personas)) and not set(personas) & set(rejects)  # nothing doubled
    assert sorted(personas) == sorted(expected_personas)
    assert sorted(rejects) == sorted(expected_rejects)  # nothing lost: every slot ends in one of the two
    assert every_shard_is_whole(crashed) > 0
    print(
        f"kills survived {killed} of {KILLS} at {[round(m, 1) for m in moments]} s; personas {len(personas)}, "
        f"rejects {len(rejects)}, lost 0, duplicated 0"
    )
    assert not list(crashed.rglob(".*.tmp"))  # temporaries of killed writes are swept on resume
