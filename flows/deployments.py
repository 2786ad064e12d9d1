"""Flows with JSON-friendly parameters, for Prefect deployments (`prefect.yaml`) and `populace serve`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from prefect import flow, serve
from prefect.client.schemas.schedules import CronSchedule
from pydantic import ValidationError

from flows.build import build_corpus
from flows.mine import mine_taxonomy
from schemas.config import load_config_file, load_run_config
from schemas.errors import UserInputError
from schemas.mining_config import MiningConfig

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

BUILD_DEPLOYMENT = "scheduled-build"


@flow(name="build_from_config", log_prints=True)
def build_from_config(
    config_path: str,
    out: str | None = None,
    ray_address: str | None = None,
    population: int | None = None,
    seed: int | None = None,
) -> str:
    """Build (or resume) the corpus a YAML run config describes; returns the run folder.

    `population` and `seed` override the config's (a run of a deployment can change them with
    `-p population=...`); the run folder's name follows from the effective config.
    """
    overrides = {key: value for key, value in (("population", population), ("seed", seed)) if value is not None}
    return build_corpus(load_run_config(config_path, overrides), out, ray_address)


@flow(name="mine_from_files", log_prints=True)
def mine_from_files(
    conversations: list[str],
    out: str,
    taxonomy: str = "seed:core",
    config_path: str | None = None,
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Mine the conversation files into a new version of `taxonomy`; returns the diff report."""
    cfg = load_config_file(config_path, MiningConfig) if config_path else MiningConfig()
    return mine_taxonomy(conversations, taxonomy, out, cfg, ray_address)


def build_deployment(
    config_path: str, cron: str, name: str = BUILD_DEPLOYMENT, out: str | None = None
) -> RunnerDeployment:
    """The RunnerDeployment `populace serve` runs: the build flow on a cron schedule."""
    deployment = build_from_config.to_deployment(
        name=name,
        cron=cron,
        parameters={"config_path": config_path, "out": out},
        description=f"populace build --config {config_path} on '{cron}'",
    )
    # Prefect types it for both callers; outside an event loop (here) it returns the deployment, not a coroutine.
    return cast("RunnerDeployment", deployment)


def check_cron(cron: str) -> None:
    """A UserInputError unless `cron` is a cron expression Prefect accepts."""
    try:
        CronSchedule(cron=cron)
    except ValidationError as exc:
        raise UserInputError(
            "--cron", "--cron", f"'{cron}' is not a cron expression", "write five fields, e.g. '0 3 * * *'"
        ) from exc


def serve_build(config_path: str, cron: str, name: str = BUILD_DEPLOYMENT, out: str | None = None) -> None:
    """Serve the build deployment on its schedule until stopped (`populace serve`)."""
    serve(build_deployment(config_path, cron, name, out))
