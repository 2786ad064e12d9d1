"""The mine_taxonomy flow: conversations -> scrubbed revealing sentences -> LLM candidates -> merged taxonomy."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from prefect import flow, get_run_logger, task

from dedup.embedders.factory import check_embedder_files, create_embedder
from flows.artifacts import publish_mining_artifact
from flows.task_options import MODEL_TASK, STAGE_TASK
from foundation.atomic_files import write_bytes_atomically
from foundation.process_guard import take_back_stop_signals
from schemas.errors import UserInputError
from schemas.mining_config import MiningConfig
from taxonomy.loader import load_taxonomy, write_taxonomy
from taxonomy.mining.candidates import Candidate
from taxonomy.mining.conversations import read_conversations
from taxonomy.mining.pipeline import collect_snippets, merge_candidates
from taxonomy.mining.report import mining_report, report_markdown
from taxonomy.mining.revealing import Snippet
from taxonomy.model import Taxonomy
from workers.extraction import build_extraction_requests, parse_extraction
from workers.proposer import check_ray_address, ensure_ray, propose_with_ray


def report_paths(out: Path) -> tuple[Path, Path]:
    """The diff report beside the mined taxonomy: <stem>.diff.json and <stem>.diff.md."""
    stem = out.name.removesuffix(".yaml").removesuffix(".yml")
    return out.with_name(f"{stem}.diff.json"), out.with_name(f"{stem}.diff.md")


def check_mining_inputs(
    conversations: list[Path], taxonomy: str, out: Path, cfg: MiningConfig, config_label: str, ray_address: str | None
) -> None:
    """Every input of a mining run, checked before Prefect and Ray start: nothing is written on bad input."""
    load_taxonomy(taxonomy)
    read_conversations(conversations)
    check_embedder_files(cfg.embedder, config_label, "embedder")
    check_ray_address(ray_address)
    if out.suffix not in (".yaml", ".yml"):
        raise UserInputError(str(out), "--out", "is not a .yaml path", "name the output like mined.yaml")


@task(**STAGE_TASK)
def collect(paths: list[Path], cfg: MiningConfig) -> tuple[list[Snippet], dict[str, Any]]:
    return collect_snippets(paths, cfg)


@task(**MODEL_TASK)
def extract(
    snippets: list[Snippet], taxonomy: Taxonomy, cfg: MiningConfig, ray_address: str | None
) -> tuple[list[Candidate], dict[str, Any]]:
    """Ask the LLM (on Ray workers) which attributes each sentence reveals; failures are counted, not fatal."""
    requests = build_extraction_requests(snippets, taxonomy, cfg.backend, cfg.seed, cfg.max_candidates_per_snippet)
    by_id = {r.request_id: s for r, s in zip(requests, snippets, strict=True)}
    roots = {root.id for root in taxonomy.categories}
    candidates: list[Candidate] = []
    failures: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    if requests:
        ensure_ray(ray_address)
    for result in propose_with_ray(requests, cfg.backend, ray_address, stage="mining extraction"):
        kept, dropped, failure = parse_extraction(result, by_id[result.request_id], roots)
        candidates.extend(kept)
        counts["candidates_dropped"] += dropped
        counts["prompt_tokens"] += result.prompt_tokens
        counts["completion_tokens"] += result.completion_tokens
        if failure:
            failures[failure] += 1
    candidates.sort(key=lambda c: (c.conversation, c.label, c.value))  # independent of result order
    return candidates, {
        "extraction_failures": dict(sorted(failures.items())),
        "candidates_kept": len(candidates),
        **counts,
    }


@flow(name="mine_taxonomy", log_prints=False, validate_parameters=False)
def mine_taxonomy(
    conversations: list[str], taxonomy: str, out: str, cfg: MiningConfig, ray_address: str | None = None
) -> dict[str, Any]:
    """Mine attributes from conversation files into a new version of `taxonomy`; write it and its diff report."""
    take_back_stop_signals()
    logger = get_run_logger()
    started = time.perf_counter()
    seed = load_taxonomy(taxonomy)
    snippets, funnel = collect([Path(p) for p in conversations], cfg)
    logger.info(
        "%d conversations, %d revealing sentences, %d sent to the LLM",
        funnel["conversations"],
        funnel["revealing_sentences"],
        funnel["snippets_sent"],
    )
    candidates, extraction = extract(snippets, seed, cfg, ray_address)
    funnel.update(extraction)
    embedder = create_embedder(cfg.embedder)
    mined, plan, placed = merge_candidates(seed, candidates, embedder.embed, cfg)
    funnel["wall_seconds"] = round(time.perf_counter() - started, 1)
    settings = {
        "merge_rule_version": cfg.merge_rule_version,
        "merge_threshold": cfg.merge_threshold,
        "attach_threshold": cfg.attach_threshold,
        "min_support": cfg.min_support,
        "max_snippets": cfg.max_snippets,
        "seed": cfg.seed,
        "embedder": embedder.name,
        "backend": cfg.backend.kind,
        "model": cfg.backend.model,
    }
    out_path = Path(out)
    written = write_taxonomy(mined, out_path)
    report = mining_report(seed, written, plan, placed, funnel, settings)
    json_path, md_path = report_paths(out_path)
    write_bytes_atomically(orjson.dumps(report, option=orjson.OPT_INDENT_2), json_path)
    write_bytes_atomically(report_markdown(report).encode(), md_path)
    publish_mining_artifact(report)
    logger.info(
        "added %d, merged %d candidates into %d leaves, rejected %d",
        report["counts"]["added"],
        report["counts"]["merged_candidates"],
        report["counts"]["merged_into_leaves"],
        report["counts"]["rejected"],
    )
    return report
