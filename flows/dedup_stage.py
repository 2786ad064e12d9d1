"""The build's dedup stage: cluster accepted personas (against earlier corpora too), count
what each stratum kept, and store features for later runs."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from prefect import task

from corpus.run_folder import PERSONAS, RunFolder
from dedup.detect import DedupItems, concat_items, fact_set, find_duplicates
from dedup.embedders import create_embedder
from dedup.embedders.factory import embedder_name
from dedup.feature_shards import FeatureShards
from dedup.index_store import feature_key, load_features, save_index
from dedup.shard_features import RANDOM_COLUMNS, shard_features
from flows.judge_stage import final_stage
from flows.task_options import STAGE_TASK
from foundation.atomic_files import commit_once, encoded_table, uncommitted, write_bytes_atomically
from schemas.config import DedupConfig, RunConfig
from schemas.errors import UserInputError
from workers.cpu_tasks import run_all


def load_existing_corpora(run_dirs: list[str], cfg: RunConfig, embedder_name: str | None) -> DedupItems | None:
    """Personas of earlier runs (--against), with their stored dedup features where usable."""
    combined: DedupItems | None = None
    for run_dir in run_dirs:
        other = RunFolder(Path(run_dir))
        parts = sorted(other.root.glob(PERSONAS))
        if not parts:
            raise UserInputError(run_dir, "against", "holds no personas/ shards", "pass finished populace run folders")
        table = pa.concat_tables([pq.read_table(p, columns=["persona_id", "narrative", "attributes"]) for p in parts])
        rows = table.to_pylist()
        items = DedupItems(
            ids=[f"{other.root.name}:{r['persona_id']}" for r in rows],
            texts=[r["narrative"] for r in rows],
            ranks=[0.0] * len(rows),
            facts=[fact_set(r["attributes"]) for r in rows],
        )
        items = load_features(other.dedup_index, items, feature_key(cfg.dedup, embedder_name))
        combined = items if combined is None else concat_items(combined, items)
    return combined


def corpus_features(run: RunFolder, cfg: RunConfig, shards: list[int], parallel: bool = True) -> FeatureShards:
    """Every shard's dedup features (computing in parallel tasks those not on disk yet), left on disk."""

    def jobs() -> Iterator[tuple[int, tuple[pa.Table, DedupConfig]]]:
        for shard in uncommitted({s: run.features(s) for s in shards}):
            yield shard, (pq.read_table(run.stage_shard(final_stage(cfg), shard)), cfg.dedup)

    # Encoded in the task that computed it (the driver only writes the bytes).
    features_file = functools.partial(encoded_table, shard_features, True, RANDOM_COLUMNS)
    for shard, data, _ in run_all(features_file, jobs(), parallel):
        write_bytes_atomically(data, run.features(shard))
    return FeatureShards([run.features(s) for s in shards])


@task(**STAGE_TASK)
def dedup_corpus(run: RunFolder, cfg: RunConfig, shards: list[int], wave: int, parallel: bool = True) -> Path:
    """Cluster every accepted persona so far, against --against corpora too.

    Wave 0 clusters its personas among themselves. A backfill wave clusters only its new personas,
    against the personas kept so far (and the --against corpora): what earlier waves kept stays
    kept, so a backfill never takes a persona from a stratum it already filled, and each wave costs
    in proportion to the corpus, not the corpus times the number of waves."""
    return commit_once(run.clusters(wave), lambda: cluster_wave(run, cfg, shards, wave, parallel))


def cluster_wave(run: RunFolder, cfg: RunConfig, shards: list[int], wave: int, parallel: bool) -> pa.Table:
    """The clusters table after `wave`: earlier waves' rows unchanged, this wave's new personas added."""
    features = corpus_features(run, cfg, shards, parallel)
    # The build's own features are computed per shard; the embedder is needed here only for
    # earlier corpora whose stored index lacks vectors.
    embedder = create_embedder(cfg.dedup.embedder) if cfg.dedup.semantic and cfg.against else None
    existing = load_existing_corpora(cfg.against, cfg, embedder.name if embedder else None)
    previous = pq.read_table(run.clusters(wave - 1)) if wave else None
    if previous is None:
        new = features.ordered()
    else:
        ids = features.ids()
        kept_before = previous.filter(pc.field("kept")).column("persona_id")
        kept_items = features.items(features.ordered(pc.is_in(ids, value_set=kept_before)))
        existing = kept_items if existing is None else concat_items(existing, kept_items)
        new = features.ordered(pc.invert(pc.is_in(ids, value_set=previous.column("persona_id"))))
    clusters = find_duplicates(features.items(new), cfg.dedup, embedder, existing)
    if previous is not None:
        clusters = pa.concat_tables([previous, clusters.cast(previous.schema)])
    return clusters


def kept_slots(run: RunFolder, shards: list[int], clusters_path: Path) -> pa.Table:
    """persona_id, stratum and slot of every persona kept so far: one lookup of every settled slot in
    the kept ids (a set built once)."""
    kept = pq.read_table(clusters_path, columns=["persona_id", "kept"]).filter(pc.field("kept")).column("persona_id")
    # Kept ids come from the clusters; every stage holds the same stratum per slot.
    slots = pa.concat_tables(
        [
            pq.read_table(run.stage_shard("settled", shard), columns=["persona_id", "stratum", "slot"])
            for shard in shards
        ]
    )
    return slots.filter(pc.is_in(slots.column("persona_id"), value_set=kept))


def kept_per_stratum(run: RunFolder, shards: list[int], clusters_path: Path) -> dict[str, int]:
    """Personas kept so far per stratum."""
    strata = kept_slots(run, shards, clusters_path).column("stratum")
    return {entry["values"]: entry["counts"] for entry in pc.value_counts(strata).to_pylist()}


def over_quota_slots(run: RunFolder, shards: list[int], clusters_path: Path, quotas: dict[str, int]) -> pa.Table:
    """The kept personas beyond their stratum's quota: the last slots of each stratum over it, so
    only backfill slots (a first wave asks exactly the quotas, a backfill wave a little more than
    the strata lack). persona_id and stratum, in slot order."""
    kept = kept_slots(run, shards, clusters_path).sort_by("slot")
    surplus: list[pa.Table] = []
    for entry in pc.value_counts(kept.column("stratum")).to_pylist():
        label, count = entry["values"], entry["counts"]
        if count > quotas.get(label, 0):
            mine = kept.filter(pc.equal(kept.column("stratum"), label))
            surplus.append(mine.slice(quotas.get(label, 0)))
    table = pa.concat_tables(surplus) if surplus else kept.slice(0, 0)
    return table.sort_by("slot").select(["persona_id", "stratum"])


def save_dedup_index(
    run: RunFolder, cfg: RunConfig, shards: list[int], clusters_path: Path, trimmed: pa.Array | None = None
) -> None:
    """Store the kept personas' features (less those `trimmed` over quota) so later runs can
    deduplicate against this one."""
    kept = pq.read_table(clusters_path).filter(pc.field("kept")).column("persona_id")
    if trimmed is not None and len(trimmed):
        kept = kept.filter(pc.invert(pc.is_in(kept, value_set=trimmed)))
    features = corpus_features(run, cfg, shards)
    order = features.ordered(pc.is_in(features.ids(), value_set=kept), by=("slot",))
    # The features were computed in tasks: only the embedder's name is needed here, not the model.
    name = embedder_name(cfg.dedup.embedder) if cfg.dedup.semantic else None
    save_index(run.dedup_index, features.items(order), feature_key(cfg.dedup, name))
