"""A build that cannot go on says why and stops; a build asked to stop stops; nothing it started survives.

Every build here is the real CLI in a child process (its own session, so the test can see every
process it started), on the real embedded model or on a plugin backend that kills its own
worker process (tests/helpers/crashing_backends.py).
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
import yaml

from schemas.config import BackendConfig
from tests.helpers.configs import tiny_config
from tests.helpers.paths import REPO
from tests.helpers.processes import process_table

pytestmark = pytest.mark.llm

STOP_LIMIT_S = 10.0


def write_config(path: Path, **overrides) -> Path:
    path.write_text(yaml.safe_dump(tiny_config(**overrides).model_dump(mode="json")))
    return path


def build_command(config: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "cli.main", "build", "--config", str(config), "--out", str(out)]


def start_build(config: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the plugin backends live in tests/
    return subprocess.Popen(
        build_command(config, out),
        cwd=REPO,
        start_new_session=True,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def processes_of(build: subprocess.Popen) -> list:
    """Live processes the build started (its session); zombies have already ended."""
    return [p for p in process_table() if p.session == build.pid and p.pid != build.pid and is_running(p.pid)]


def is_running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def model_worker_running(build: subprocess.Popen) -> bool:
    return any(p.name.startswith("ray::EngineWork") for p in processes_of(build))


def prefect_server_running(build: subprocess.Popen) -> bool:
    return any("uvicorn" in command_line(p.pid) for p in processes_of(build))


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def nothing_left(build: subprocess.Popen, timeout_s: float = 15.0) -> list:
    deadline = time.monotonic() + timeout_s
    while (left := processes_of(build)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [(p.pid, p.name) for p in left]


def slots_of(out: Path) -> list[str]:
    return sorted(
        i
        for table in ("personas", "rejects")
        for part in sorted((out / table).glob("part-*.parquet"))
        for i in pq.read_table(part, columns=["persona_id"]).column("persona_id").to_pylist()
    )


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 feature check")
def test_the_llama_cpp_build_is_portable():
    """The setup's build carries no AMX and no AVX-512: machines that list them may still trap them."""
    import llama_cpp

    stamp = Path(sys.prefix) / ".llama-cpp-build"
    if stamp.is_file() and stamp.read_text().startswith("native"):
        pytest.skip("this environment was set up with NATIVE=1")
    info = llama_cpp.llama_print_system_info().decode()
    assert "AVX2 = 1" in info, info
    for feature in ("AMX_INT8", "AVX512"):
        assert f"{feature} = 1" not in info, info


def test_a_worker_killed_by_sigill_on_every_request_stops_the_build_with_one_clear_message(tmp_path):
    deaths = tmp_path / "deaths.log"
    config = write_config(
        tmp_path / "config.yaml",
        name="sigill",
        population=2,
        backend=BackendConfig(
            kind="plugin",
            factory="tests.helpers.crashing_backends:SigillOnEveryRequest",
            options={"deaths": str(deaths)},
            max_worker_restarts=2,
            batch_size=2,
        ).model_dump(),
    )
    out = tmp_path / "run"
    build = start_build(config, out)
    wait_for(deaths.exists, 300, "the first SIGILL")
    first_death = time.monotonic()
    _, stderr = build.communicate(timeout=300)
    print(f"first SIGILL to exit: {time.monotonic() - first_death:.1f} s; deaths {len(deaths.read_text().split())}")

    assert build.returncode == 1, stderr[-3000:]
    message = stderr.strip().splitlines()[-1]
    assert message.startswith("error: the model worker was killed by SIGILL during propose"), message
    assert "CPU instructions this machine does not allow" in message and "README Troubleshooting" in message
    assert len(deaths.read_text().split()) == 3  # the first death and two restarts, then no more
    assert not nothing_left(build)
    # Left resumable: the sampled shards are whole, the manifest names the run, no temporaries.
    assert orjson.loads((out / "manifest.json").read_bytes())["run_id"] == "run"
    assert [pq.read_table(p).num_rows for p in (out / "skeletons").glob("part-*.parquet")] == [2]
    assert not list(out.rglob(".*.tmp"))


def test_a_worker_that_dies_on_its_first_request_is_restarted_and_nothing_is_lost(tmp_path):
    marker = tmp_path / "died"
    config = write_config(
        tmp_path / "config.yaml",
        name="dies-once",
        population=3,
        max_revise_rounds=0,
        backend=BackendConfig(
            kind="plugin",
            factory="tests.helpers.crashing_backends:DiesOnFirstRequest",
            options={"marker": str(marker), "signal": "SIGKILL"},
            max_tokens=160,
            batch_size=1,
            temperature=0,
        ).model_dump(),
    )
    out = tmp_path / "run"
    build = start_build(config, out)
    _, stderr = build.communicate(timeout=600)
    assert build.returncode == 0, stderr[-3000:]
    assert marker.exists()  # it did die once
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    slots = slots_of(out)
    assert len(slots) == len(set(slots)) == manifest["slots"] >= 3
    proposals = pq.read_table(out / "proposals" / "round-0").column("persona_id").to_pylist()
    assert sorted(proposals) == sorted(set(proposals))  # the killed batch was answered once, after the restart


def test_sigint_and_sigterm_stop_a_real_build_quickly_and_the_rerun_resumes(tmp_path):
    config = write_config(
        tmp_path / "config.yaml",
        name="stop",
        population=4,
        shard_size=1,
        max_revise_rounds=0,
        backend=BackendConfig(max_tokens=160, batch_size=1, temperature=0).model_dump(),
    )
    out = tmp_path / "run"
    # SIGINT (Ctrl-C) while the model answers; SIGTERM early, while Prefect's API starts.
    for signum, moment, expected in ((signal.SIGINT, "propose", 130), (signal.SIGTERM, "prefect start", 143)):
        build = start_build(config, out)
        if moment == "propose":
            wait_for(lambda b=build: model_worker_running(b), 300, "the model worker")
            time.sleep(1.0)
        else:
            wait_for(lambda b=build: prefect_server_running(b), 300, "Prefect's temporary server")
        sent = time.monotonic()
        build.send_signal(signum)
        try:
            _, stderr = build.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            build.kill()
            pytest.fail(f"{signal.Signals(signum).name} did not stop the build within 60 s")
        took = time.monotonic() - sent
        print(f"{signal.Signals(signum).name} during {moment}: exit {build.returncode} after {took:.1f} s")
        assert build.returncode == expected, stderr[-3000:]
        assert took < STOP_LIMIT_S
        assert "rerun the same command to resume" in stderr
        assert not nothing_left(build, timeout_s=5)
    done = subprocess.run(build_command(config, out), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    slots = slots_of(out)
    assert len(slots) == len(set(slots)) == manifest["slots"]


def test_a_build_killed_with_sigkill_leaves_no_process_running(tmp_path):
    config = write_config(
        tmp_path / "config.yaml",
        name="killed",
        population=2,
        max_revise_rounds=0,
        backend=BackendConfig(max_tokens=160, batch_size=1).model_dump(),
    )
    build = start_build(config, tmp_path / "run")
    wait_for(lambda: model_worker_running(build), 300, "the model worker")
    started = {(p.pid, p.name) for p in processes_of(build)}
    assert any(name.startswith(("raylet", "gcs_server")) for _, name in started), started
    os.kill(build.pid, signal.SIGKILL)  # the build alone: what it started must not outlive it
    build.wait()
    assert not nothing_left(build, timeout_s=20), f"still running after the build was killed (of {started})"


def test_doctor_passes_here_and_names_a_broken_model_with_a_fix(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "doctor", "--json"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    checks = {c["name"]: c for c in orjson.loads(done.stdout)}
    assert done.returncode == 0, checks
    assert set(checks) == {"python", "llama.cpp build vs this CPU", "model", "disk", "ray", "prefect", "embedder"}
    assert all(c["status"] in ("ok", "warn") for c in checks.values()), checks
    assert "loads and generates" in checks["model"]["detail"]

    not_a_model = tmp_path / "model.gguf"
    not_a_model.write_bytes(b"<html>not found</html>")
    config = write_config(tmp_path / "config.yaml", backend=BackendConfig(model=str(not_a_model)).model_dump())
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "doctor", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1
    line = next(line for line in done.stdout.splitlines() if "model:" in line)
    assert line.lstrip().startswith("fail") and "not a GGUF file" in line and "fix:" in line
