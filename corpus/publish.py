"""Publishing a run: the manifest's account of what it holds, the DuckDB catalog, the dataset card
and the report, written the same way by a build's finish and by `populace report`."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from corpus.catalog import build_catalog
from corpus.dataset_card import write_dataset_card
from corpus.report import write_report
from corpus.run_folder import PERSONAS, RunFolder
from corpus.run_metrics import summarize_run
from corpus.sampling_metrics import cells_as_json, sampling_metrics
from schemas.config import RunConfig, load_run_config
from schemas.errors import UserInputError
from taxonomy.loader import load_taxonomy
from taxonomy.model import Taxonomy
from taxonomy.names import NAME_SOURCE
from taxonomy.presets import load_preset
from taxonomy.quotas import QuotaCell, plan_quotas
from taxonomy.sample_tally import metrics_scope
from workers.prompts import template_hash

LIBRARIES = ("populace", "prefect", "ray", "duckdb", "pyarrow", "pandera", "datasketch", "llama_cpp_python", "pydantic")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def leaf_counts(taxonomy: Taxonomy) -> dict[str, int]:
    """Leaves per root category, the denominators of the report's coverage plot."""
    return {root: len(leaves) for root, leaves in taxonomy.leaves_by_root().items() if leaves}


def run_lineage(run: RunFolder, cfg: RunConfig, taxonomy: Taxonomy) -> dict[str, Any]:
    """The lineage columns every persona of the run carries."""
    return {
        "run_id": run.root.name,
        "taxonomy_name": taxonomy.name,
        "taxonomy_version": taxonomy.version,
        "taxonomy_hash": taxonomy.content_hash,
        "seed": cfg.seed,
        "backend": cfg.backend.kind,
        "model": cfg.backend.model,
        "prompt_template_hash": template_hash(),
    }


def persona_sampling_metrics(
    run: RunFolder, cfg: RunConfig, taxonomy: Taxonomy, cells: list[QuotaCell]
) -> dict[str, Any]:
    """Plan fit, preset fit and taxonomy coverage of the personas kept (empty when none were)."""
    if not run.has_files(PERSONAS):
        return {}
    preset = load_preset(cfg.quotas.preset, taxonomy) if cfg.quotas.preset else None
    return sampling_metrics(run.root / PERSONAS, cells_as_json(cells), metrics_scope(taxonomy, preset))


def publish(
    run: RunFolder, cfg: RunConfig, taxonomy: Taxonomy, cells: list[QuotaCell], facts: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Count what the run holds into its manifest (with the caller's `facts` about how it ran), then
    write the catalog, the dataset card and the report from it; return the manifest."""
    build_catalog(run)
    counts = summarize_run(run, {cell.label: cell.count for cell in cells})
    manifest = run.update_manifest(
        {
            "run_id": run.root.name,
            "fingerprint": cfg.fingerprint(),
            "requested": cfg.population,
            **counts,
            "sampling": persona_sampling_metrics(run, cfg, taxonomy, cells),
            "taxonomy": {"name": taxonomy.name, "version": taxonomy.version, "hash": taxonomy.content_hash},
            "backend": {"kind": cfg.backend.kind, "model": cfg.backend.model},
            "names": NAME_SOURCE,
            "prompt_template_hash": template_hash(),
            **(facts or {}),
        }
    )
    write_dataset_card(run, cfg.license)
    write_report(run, leaf_counts(taxonomy))
    return manifest


def republish(run_dir: Path) -> RunFolder:
    """`populace report`: publish a finished run folder again from what it holds (same manifest counts,
    catalog, card and report a build writes)."""
    run = RunFolder.existing(run_dir)
    if not run.has_files(PERSONAS):
        raise UserInputError(
            str(run_dir), "personas/", "this build has not finished", "rerun the same populace build to finish it"
        )
    cfg = load_run_config(run.config)
    taxonomy = load_taxonomy(cfg.taxonomy)
    publish(run, cfg, taxonomy, plan_quotas(cfg.strata, taxonomy, cfg.population, cfg.quotas))
    return run
