"""Planted outcomes: run folders, personas and rejects made from tables with the project's own stages.

What a small model writes differs between machines (llama.cpp's kernels differ with the CPU), so a
test that needs a reject, a persona or an accepted slot plants one rather than hoping that the
generation makes it. Planted slots are sampled as a build samples them, their answers go through
the real validators and settle step, and their personas and rejects through the build's own writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson
import pyarrow as pa

from corpus.publish import publish, run_lineage
from corpus.run_folder import RunFolder, prepare_run_folder
from corpus.shard_readers import read_skeletons
from flows.build import write_records
from foundation.atomic_files import write_table_atomically
from schemas.config import RunConfig, load_run_config
from schemas.records import Skeleton
from schemas.tables import CLUSTERS, PROPOSALS
from taxonomy.loader import load_taxonomy
from taxonomy.model import Taxonomy
from taxonomy.quotas import QuotaCell, plan_quotas, plan_slots, shard_ranges, shortfall
from taxonomy.skeleton_table import SKELETON_STATISTICS, batch_to_table
from validators.constraints import sample_constrained
from validators.engine import validate_batch
from validators.rule_pack import load_rule_pack
from validators.settle import settle_slots

# An answer no check can accept: it is not JSON, so the schema check fails it ("schema" reject).
UNREADABLE = "{planted by a test: this output is not JSON"
# Different topics, so that planted personas are no near-duplicates of one another. Each continues the
# opening sentence that code writes from the facts ("Dana Reyes is a 45-year-old nurse in Ohio.").
STORIES = [
    "{first} keeps a small vegetable garden behind the house and trades seedlings with the neighbours "
    "every spring. Saturday mornings belong to the farmers market and a long chat with the beekeeper there.",
    "{first} restores old bicycles in a cramped garage and gives most of them away to students. "
    "Evenings end with a crossword and a pot of strong black tea.",
    "{first} sings bass in a community choir that rehearses in a drafty church hall. "
    "Summer holidays mean a tent, a lake and far too many mosquito bites.",
    "{first} bakes sourdough twice a week and has kept the same starter alive for nine years. "
    "Friends know to expect a warm loaf whenever they visit.",
    "{first} follows minor league baseball with a scorecard and a pencil behind one ear. "
    "Winter is for model trains and a slowly growing layout in the basement.",
    "{first} volunteers at the animal shelter on Sundays, walking the dogs nobody else picks. "
    "A battered paperback of sea stories travels everywhere in a coat pocket.",
]


def planted_answer(skeleton: Skeleton) -> str:
    """An LLM answer (the narrative's continuation as JSON) that passes every check for this skeleton."""
    story = STORIES[skeleton.slot % len(STORIES)]
    return orjson.dumps({"narrative": story.format(first=skeleton.name.split(" ")[0])}).decode()


def plant_shard(
    run: RunFolder,
    cfg: RunConfig,
    taxonomy: Taxonomy,
    shard: int,
    slots: range,
    cells: Sequence[QuotaCell],
    accept: Sequence[bool],
) -> list[Skeleton]:
    """One shard of slots through sample -> (planted) propose -> validate -> settle, as round 0 of a build.

    Slot i gets a persona answer where accept[i], else UNREADABLE; the real checks decide, and a planted
    persona the checks refuse stops the test here rather than later and obscurely."""
    batch, redraws = sample_constrained(taxonomy, list(cells), cfg.seed, slots, cfg.deep_attributes)
    skeletons_path = run.stage_shard("skeletons", shard)
    write_table_atomically(batch_to_table(batch, taxonomy, redraws, shard), skeletons_path, SKELETON_STATISTICS)
    skeletons = read_skeletons(skeletons_path)
    outputs = {
        s.persona_id: planted_answer(s) if keep else UNREADABLE for s, keep in zip(skeletons, accept, strict=True)
    }
    proposals = [
        {
            "persona_id": pid,
            "round": 0,
            "raw_output": text,
            "error": None,
            "finish_reason": "stop",
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "retries": 0,
        }
        for pid, text in sorted(outputs.items())
    ]
    _, verdicts = validate_batch([(s, outputs[s.persona_id]) for s in skeletons], taxonomy, load_rule_pack(), 0)
    settled = settle_slots(skeletons, {0: {p["persona_id"]: p for p in proposals}}, {0: verdicts.to_pylist()})
    refused = [
        (r["persona_id"], r["reason"], r["detail"])
        for r, keep in zip(settled.to_pylist(), accept, strict=True)
        if r["accepted"] != keep
    ]
    assert not refused, f"a planted answer did not settle as planted: {refused}"
    write_table_atomically(pa.Table.from_pylist(proposals, schema=PROPOSALS), run.round_shard("proposals", 0, shard))
    write_table_atomically(verdicts, run.round_shard("verdicts", 0, shard))
    write_table_atomically(settled, run.stage_shard("settled", shard))
    return skeletons


def plant_run(root: Path, cfg: RunConfig, accept: Sequence[bool] | None = None) -> RunFolder:
    """A run folder of `cfg` whose first wave is planted up to the settle stage, shard by shard as a
    build lays it out: the same slots, ids, strata and facts a build of `cfg` samples.

    `accept[slot]` (default: every slot) chooses a persona answer or UNREADABLE. `build_corpus(cfg, root)`
    resumes from here (judge, dedup, write, with max_revise_rounds=0), or `publish_run` ends it without one."""
    taxonomy = load_taxonomy(cfg.taxonomy)
    accept = [True] * cfg.population if accept is None else list(accept)
    assert len(accept) == cfg.population
    run = prepare_run_folder(cfg, root)
    cells = plan_slots(cfg, taxonomy).slot_cells
    ranges = shard_ranges(0, cfg.population, cfg.shard_size)
    for shard, slots in enumerate(ranges):
        plant_shard(run, cfg, taxonomy, shard, slots, cells[slots.start : slots.stop], accept[slots.start : slots.stop])
    manifest = run.read_manifest()
    manifest.update({"requested": cfg.population, "slots": cfg.population, "shards": len(ranges)})
    run.write_manifest(manifest)
    return run


def plant_slots(run_dir: Path, personas: int = 1, rejects: int = 1) -> dict[str, list[str]]:
    """Add slots after a finished run's last one, in a new shard: `personas` kept with planted prose and
    `rejects` lost to the schema check; then end the run again (manifest, catalog, card, report).

    Every slot stays a persona or a reject exactly once, with the id a build would give it."""
    run = RunFolder(Path(run_dir))
    cfg = load_run_config(run.config)
    taxonomy = load_taxonomy(cfg.taxonomy)
    cells = [c for c in plan_quotas(cfg.strata, taxonomy, cfg.population, cfg.quotas) if c.count]
    manifest = run.read_manifest()
    first, shard = manifest["slots"], manifest["shards"]
    accept = [True] * personas + [False] * rejects
    slots = range(first, first + len(accept))
    skeletons = plant_shard(
        run, cfg, taxonomy, shard, slots, [cells[i % len(cells)] for i in range(len(accept))], accept
    )
    manifest.update({"slots": slots.stop, "shards": shard + 1, "backfilled": slots.stop - cfg.population})
    run.write_manifest(manifest)
    publish_run(run.root)
    return {
        "personas": [s.persona_id for s, keep in zip(skeletons, accept, strict=True) if keep],
        "rejects": [s.persona_id for s, keep in zip(skeletons, accept, strict=True) if not keep],
    }


def publish_run(run_dir: Path) -> None:
    """End a (partly) planted run as a build ends: personas and rejects of every shard not yet written,
    through the build's own writer and table contracts; then the manifest's counts, the catalog, the
    dataset card and the report, by the function the build calls."""
    run = RunFolder(Path(run_dir))
    cfg = load_run_config(run.config)
    taxonomy = load_taxonomy(cfg.taxonomy)
    cells = plan_quotas(cfg.strata, taxonomy, cfg.population, cfg.quotas)
    waves = sorted((run.root / "dedup").glob("wave-*/clusters.parquet"), key=lambda p: int(p.parent.name[5:]))
    clusters = waves[-1] if waves else write_table_atomically(CLUSTERS.empty_table(), run.clusters(0))
    lineage = run_lineage(run, cfg, taxonomy)
    write_records.fn(run, lineage, list(range(run.read_manifest()["shards"])), clusters)  # skips shards a build wrote
    manifest = publish(run, cfg, taxonomy, cells)
    produced = {label: stratum["produced"] for label, stratum in manifest["strata"].items()}
    run.update_manifest({"short_by_stratum": shortfall(cells, produced)})
