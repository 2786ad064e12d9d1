"""`RUN_DIR/README.md`: a Hugging Face dataset card, so the Hub and `datasets.load_dataset` read the folder as is.

The YAML header declares two configs (`personas`, the default, and `rejects` when a slot was rejected) whose
`data_files` point at the Parquet shards; the body gives requested vs produced counts per
stratum, the columns, the lineage and the metrics from the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from corpus.run_folder import RunFolder
from foundation.atomic_files import write_bytes_atomically
from schemas.tables import PERSONAS, REJECTS

READ_BATCH_ROWS = 10_000
COLUMN_DESCRIPTIONS = {
    "persona_id": "deterministic id: a hash of the run seed and the slot",
    "slot": "the quota slot this record fills",
    "stratum": "the quota cell (stratum values) of the slot",
    "name": "full name written by the LLM",
    "narrative": "third-person portrait written by the LLM, checked against the facts",
    "attributes": "the sampled facts as {key: attribute id, value} entries, copied from the skeleton, never "
    "re-typed by the LLM",
    "run_id": "the run folder's name",
    "taxonomy_name": "taxonomy the facts come from",
    "taxonomy_version": "its version",
    "taxonomy_hash": "sha256 of its canonical content",
    "seed": "the run seed",
    "backend": "LLM backend kind",
    "model": "LLM model",
    "prompt_template_hash": "hash of the prompt template",
    "verdict_summary": "checks that failed (errors) or warned, over all rounds",
    "rounds": "propose/revise rounds the record took",
    "duplicate_cluster_id": "the near-duplicate cluster the record kept",
    "created_at": "when the record was written (UTC)",
    "judge_plausibility": "LLM judge score 1-5 (empty when the judge did not run)",
    "judge_consistency": "LLM judge score 1-5 (empty when the judge did not run)",
    "stage": "where the slot was rejected (propose, validate, judge, dedup, quota)",
    "reason": "the failed check ids, backend, duplicate_of:<id>, or over_quota (kept beyond its stratum's quota)",
    "detail": "what failed, in words",
    "round": "the last round",
    "raw_output": "what the LLM wrote, kept as it was",
    "duplicate_of": "the kept record this one duplicates",
}


def size_category(n: int) -> str:
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ):
        if n < limit:
            return label
    return "n>10M"


def card_header(manifest: dict[str, Any], license_id: str) -> dict[str, Any]:
    return {
        "license": license_id,
        "language": ["en"],
        "pretty_name": f"populace synthetic personas ({manifest['run_id']})",
        "tags": ["synthetic", "personas", "populace"],
        "size_categories": [size_category(manifest.get("produced", 0))],
        # batch_size: a shard may hold no rows (every slot of it rejected, or none); without an explicit
        # size the Parquet reader of `datasets` takes the empty row group's 0 and fails.
        # A config whose files hold no rows cannot be loaded ("corresponds to no data"): a run
        # without rejects declares no `rejects` config.
        "configs": [
            {
                "config_name": "personas",
                "default": True,
                "batch_size": READ_BATCH_ROWS,
                "data_files": [{"split": "train", "path": "personas/part-*.parquet"}],
            },
            *(
                [
                    {
                        "config_name": "rejects",
                        "batch_size": READ_BATCH_ROWS,
                        "data_files": [{"split": "train", "path": "rejects/part-*.parquet"}],
                    }
                ]
                if manifest.get("rejected", 0)
                else []
            ),
        ],
    }


def dataset_card(manifest: dict[str, Any], license_id: str = "other") -> str:
    strata = manifest.get("strata", {})
    sampling = manifest.get("sampling") or {}
    lines = [
        "---",
        yaml.safe_dump(card_header(manifest, license_id), sort_keys=False).strip(),
        "---",
        "",
        f"# Synthetic personas: {manifest['run_id']}",
        "",
        "Synthetic persona records built by populace: facts sampled from a taxonomy with exact quotas, prose "
        "written by an LLM and checked against the facts, near-duplicates removed. The people are invented; "
        "any resemblance to real persons is coincidence.",
        "",
        "## Requested vs produced",
        "",
        f"{manifest.get('produced', 0)} personas produced of {manifest.get('requested', 0)} requested; "
        + (
            f"{manifest['rejected']} rejected slots are kept in the `rejects` config with their reasons."
            if manifest.get("rejected", 0)
            else "no slot was rejected, so the card declares no `rejects` config."
        ),
        "",
        "| stratum | requested | produced |",
        "|---|---|---|",
        *[f"| {name} | {c['requested']} | {c['produced']} |" for name, c in strata.items()],
        "",
        "## Columns",
        "",
        "`personas`:",
        "",
        "| column | type | description |",
        "|---|---|---|",
        *[f"| {f.name} | {f.type} | {COLUMN_DESCRIPTIONS.get(f.name, '')} |" for f in PERSONAS],
        "",
        "`rejects`:",
        "",
        "| column | type | description |",
        "|---|---|---|",
        *[f"| {f.name} | {f.type} | {COLUMN_DESCRIPTIONS.get(f.name, '')} |" for f in REJECTS],
        "",
        "## Lineage",
        "",
        f"- taxonomy: {manifest.get('taxonomy', {}).get('name')} {manifest.get('taxonomy', {}).get('version')} "
        f"(sha256 {str(manifest.get('taxonomy', {}).get('hash', ''))[:16]}…)",
        f"- backend: {manifest.get('backend', {}).get('kind')} / {manifest.get('backend', {}).get('model')}",
        *([f"- names (sampled facts, not written by the LLM): {manifest['names']}"] if manifest.get("names") else []),
        "- narrative: its first sentence (name, age, occupation or status, state) is written from the facts; "
        "the LLM continues it",
        f"- prompt template hash: {manifest.get('prompt_template_hash')}",
        f"- config fingerprint: {manifest.get('fingerprint')}",
        f"- library versions: {', '.join(f'{k} {v}' for k, v in manifest.get('versions', {}).items())}",
        "",
        "## Metrics",
        "",
        f"- acceptance rate per slot: {manifest.get('acceptance_rate')}",
        f"- completion tokens per persona: {manifest.get('completion_tokens_per_persona')}",
        f"- slots backfilled: {manifest.get('backfilled')} (stopped by {manifest.get('backfill_stopped_by')})",
        f"- quota fit (joint cells): TVD {sampling.get('joint', {}).get('tvd')}",
        f"- taxonomy leaf coverage: {sampling.get('leaf_coverage')}",
        *[f"- census fit {name}: TVD {fit.get('tvd')}" for name, fit in sampling.get("preset_fit", {}).items()],
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'personas = load_dataset("path/to/this/folder", "personas", split="train")',
        "```",
        "",
        "```sql",
        '-- populace query <this folder> "...", or DuckDB directly:',
        "SELECT stratum, count(*) FROM 'personas/*.parquet' GROUP BY stratum;",
        "```",
        "",
    ]
    return "\n".join(lines)


def write_dataset_card(run: RunFolder, license_id: str = "other") -> Path:
    return write_bytes_atomically(dataset_card(run.read_manifest(), license_id).encode(), run.card)
