"""One wave of a build, streamed shard by shard: sample -> propose -> validate -> revise -> settle.

Each shard moves on its own. It is sampled (in a Ray task) when it opens, and its requests are
rendered in another. As soon as all of a round's answers for a shard are in, they are committed and
validated in a Ray task; the slots that failed go straight back to the model workers as revise
requests (rendered in a task too); after the last round the shard is settled in another task. So
the workers keep generating while sampling, rendering, validation and settling run beside them,
and nothing waits for the slowest shard of a round. Shards open lazily (only while the workers'
queue runs low), so the driver holds a few shards in memory, not the wave. The driver only reads,
forwards and commits: every per-slot computation runs in the tasks.

Every step commits one shard file (skeletons; proposals and verdicts per round; settled), so a rerun
resumes from whatever is on disk; answers do not depend on the order they arrive in (each request
carries its slot's seed, and rows are sorted by persona_id before they are written).
"""

from __future__ import annotations

import functools
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpus.run_folder import RunFolder
from dedup.shard_features import RANDOM_COLUMNS, shard_features
from flows.progress import stage_progress
from foundation.atomic_files import encoded_table, parquet_bytes, write_bytes_atomically, write_table_atomically
from schemas.config import RunConfig
from schemas.tables import PROPOSALS, VERDICTS, rows_table
from taxonomy.quotas import QuotaCell
from taxonomy.skeleton_table import SKELETON_STATISTICS
from validators.constraints import sample_shard_table
from validators.engine import validate_shard_table
from validators.revision import round_request_rows
from validators.settle import settle_shard_table
from workers.backend import GenerationResult
from workers.cpu_tasks import StoredTable, run_here, submit, tasks_can_run
from workers.engine_pool import BATCHES_IN_FLIGHT_PER_WORKER, Engines, RequestStream

# Requests kept queued for the model workers, in rounds of their batches in flight: below this a
# further shard opens. Enough that a worker never waits for the driver, few enough to stay lean.
QUEUE_DEPTH_IN_FLIGHTS = 2
# What a CPU task is tracked by: (kind, shard, round or None).
TaskTag = tuple[str, int, int | None]
# The kinds of task whose table is committed, and how it is written (statistics, raw columns).
WRITE_OPTIONS: dict[str, tuple[bool | list[str], tuple[str, ...]]] = {
    "sample": (SKELETON_STATISTICS, ()),
    "validate": (True, ()),
    "settle": (True, ()),
    "features": (True, RANDOM_COLUMNS),
}


def proposal_row(result: GenerationResult, round_no: int) -> dict[str, Any]:
    return {
        "persona_id": result.request_id,
        "round": round_no,
        "raw_output": result.text,
        "error": result.error,
        "finish_reason": result.finish_reason,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "retries": result.retries,
    }


@dataclass
class OpenRound:
    """A shard's round while its answers come in."""

    round_no: int
    expected: int
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class WaveStream:
    """Drives one wave's shards through every revise round to `settled/` (see the module docstring)."""

    run: RunFolder
    cfg: RunConfig
    taxonomy_ref: Any  # the taxonomy in Ray's object store, read by every task
    shards: list[int]
    engines: Engines
    on_round_done: Any  # callback(round_no) once every shard of the wave has that round's verdicts
    on_sampled: Any  # callback() once every shard of the wave has its skeletons
    plan: dict[int, tuple[range, list[QuotaCell]]]  # shard -> (its slots, their quota cells)
    task_seconds: dict[str, float] = field(default_factory=dict)
    proposing: dict[int, OpenRound] = field(default_factory=dict)
    shard_of: dict[str, int] = field(default_factory=dict)
    rounds_done: set[tuple[int, int]] = field(default_factory=set)
    shards_past_round: Counter[int] = field(default_factory=Counter)  # round -> shards with its verdicts
    sampled: set[int] = field(default_factory=set)
    opening: int = 0  # shards whose sampling or first requests' task runs now

    @property
    def rounds(self) -> int:
        return self.cfg.max_revise_rounds + 1

    @property
    def features_here(self) -> bool:
        """Features come from settled slots unless a judge gates them first (then the dedup stage makes them)."""
        return not self.cfg.judge.enabled

    def run_wave(self, label: str) -> None:
        backend = self.cfg.backend
        # A shard's worth of requests queued at least: the next shard is sampled while they are answered.
        low_water = max(
            self.cfg.shard_size,
            QUEUE_DEPTH_IN_FLIGHTS * BATCHES_IN_FLIGHT_PER_WORKER * backend.workers * backend.batch_size,
        )
        self.stream: RequestStream = self.engines.stream(backend, label)
        self.parallel = tasks_can_run(self.engines.reserved_cpus(backend))
        unopened = deque(self.shards)
        with stage_progress(f"{label} (shards settled)", len(self.shards)) as advance:
            self.advance = advance

            def open_more() -> None:
                while unopened and not self.opening and self.stream.queued_requests < low_water:
                    self.resume(unopened.popleft())

            open_more()
            for event in self.stream:
                if event.kind == "result":
                    self.on_answer(event.value)
                else:
                    self.on_task(event.tag, *event.value)
                open_more()

    def resume(self, shard: int) -> None:
        """Take the shard's next step from what is on disk."""
        if not self.run.stage_shard("skeletons", shard).is_file():
            slots, cells = self.plan[shard]
            self.opening += 1
            self.start(
                ("sample", shard, None),
                sample_shard_table,
                self.taxonomy_ref,
                cells,
                self.cfg.seed,
                slots,
                self.cfg.deep_attributes,
                shard,
            )
            return
        self.skeletons_committed(shard)
        for round_no in range(self.rounds):
            if not self.run.round_shard("proposals", round_no, shard).is_file():
                self.propose(shard, round_no)
                return
            if not self.run.round_shard("verdicts", round_no, shard).is_file():
                self.validate(shard, round_no)
                return
            self.round_committed(shard, round_no)
        if not self.run.stage_shard("settled", shard).is_file():
            self.settle(shard)
            return
        if self.features_here and not self.run.features(shard).is_file():
            # Dedup signatures and vectors while the workers generate: the dedup stage then only pairs.
            self.start(
                ("features", shard, None),
                shard_features,
                StoredTable.of(self.run.stage_shard("settled", shard)),
                self.cfg.dedup,
            )
            return
        self.advance()

    def propose(self, shard: int, round_no: int) -> None:
        """Render the round's requests in a task; requests_made sends them to the model workers."""
        previous = None
        if round_no:
            previous = StoredTable.of(self.run.round_shard("verdicts", round_no - 1, shard))
        else:
            self.opening += 1  # a shard counts as opening until its first requests are queued
        self.start(
            ("prompts", shard, round_no),
            round_request_rows,
            StoredTable.of(self.run.stage_shard("skeletons", shard)),
            previous,
            self.taxonomy_ref,
            self.cfg.backend,
            self.cfg.seed,
            round_no,
        )

    def requests_made(self, shard: int, round_no: int, requests: list[dict[str, Any]]) -> None:
        if round_no == 0:
            self.opening -= 1
        if not requests:  # nothing left to revise: the round is empty and so are its verdicts
            write_table_atomically(PROPOSALS.empty_table(), self.run.round_shard("proposals", round_no, shard))
            write_table_atomically(VERDICTS.empty_table(), self.run.round_shard("verdicts", round_no, shard))
            self.resume(shard)
            return
        self.proposing[shard] = OpenRound(round_no, len(requests))
        self.shard_of.update((r["request_id"], shard) for r in requests)
        self.stream.add_dumped(requests)

    def on_answer(self, result: GenerationResult) -> None:
        shard = self.shard_of.pop(result.request_id, None)
        if shard is None:  # an answer to a batch sent twice after its node went away
            return
        open_round = self.proposing[shard]
        open_round.rows.append(proposal_row(result, open_round.round_no))
        if len(open_round.rows) < open_round.expected:
            return
        del self.proposing[shard]
        rows = sorted(open_round.rows, key=lambda r: r["persona_id"])
        # Encoded once: the file committed is what the validation task reads.
        proposals = StoredTable(parquet_bytes(rows_table(rows, PROPOSALS)))
        write_bytes_atomically(proposals.data, self.run.round_shard("proposals", open_round.round_no, shard))
        self.validate(shard, open_round.round_no, proposals)

    def validate(self, shard: int, round_no: int, proposals: StoredTable | None = None) -> None:
        """Validate a round's answers in a task (a revise round's task picks its slots' skeletons)."""
        if proposals is None:
            proposals = StoredTable.of(self.run.round_shard("proposals", round_no, shard))
        skeletons = StoredTable.of(self.run.stage_shard("skeletons", shard))
        self.start(
            ("validate", shard, round_no), validate_shard_table, skeletons, proposals, self.taxonomy_ref, round_no
        )

    def settle(self, shard: int) -> None:
        """Settle the shard's slots in a task, from its files (verdicts compress to a few KB: sent whole)."""
        self.start(
            ("settle", shard, None),
            settle_shard_table,
            StoredTable.of(self.run.stage_shard("skeletons", shard)),
            {r: StoredTable.of(self.run.round_shard("proposals", r, shard)) for r in range(self.rounds)},
            {r: StoredTable.of(self.run.round_shard("verdicts", r, shard)) for r in range(self.rounds)},
        )

    def start(self, tag: TaskTag, core: Any, *args: Any) -> None:
        """A Ray task tracked beside the generation, or (when the model workers hold every CPU) run here.

        A task whose table is committed returns it as Parquet bytes, encoded where it ran."""
        if tag[0] in WRITE_OPTIONS:
            core = functools.partial(encoded_table, core, *WRITE_OPTIONS[tag[0]])
        if self.parallel:
            self.stream.track(submit(core, *args), tag)
        else:
            self.on_task(tag, *run_here(core, *args))

    def on_task(self, tag: TaskTag, value: Any, seconds: float) -> None:
        """A task's result (a shard file's bytes to commit; a prompts task's request rows) and its seconds."""
        kind, shard, round_no = tag
        self.task_seconds[kind] = self.task_seconds.get(kind, 0.0) + seconds
        if kind == "prompts":
            assert round_no is not None  # prompts tags carry their round
            self.requests_made(shard, round_no, value)
            return
        if kind == "sample":
            self.opening -= 1
        write_bytes_atomically(value, self.output_of(kind, shard, round_no))
        self.resume(shard)

    def output_of(self, kind: str, shard: int, round_no: int | None) -> Path:
        if kind == "sample":
            return self.run.stage_shard("skeletons", shard)
        if kind == "validate":
            assert round_no is not None  # validate tags carry their round
            return self.run.round_shard("verdicts", round_no, shard)
        if kind == "settle":
            return self.run.stage_shard("settled", shard)
        return self.run.features(shard)

    def skeletons_committed(self, shard: int) -> None:
        if shard not in self.sampled:
            self.sampled.add(shard)
            if len(self.sampled) == len(self.shards):
                self.on_sampled()

    def round_committed(self, shard: int, round_no: int) -> None:
        if (shard, round_no) in self.rounds_done:
            return
        self.rounds_done.add((shard, round_no))
        self.shards_past_round[round_no] += 1
        if self.shards_past_round[round_no] == len(self.shards):
            self.on_round_done(round_no)
