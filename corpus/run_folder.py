"""The run folder: the one way in to its paths, its Parquet globs as SQL, and its manifest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from corpus.run_lock import LOCK_NAME
from foundation.atomic_files import write_bytes_atomically
from schemas.config import RunConfig
from schemas.errors import UserInputError

# Globs of the tables every run folder holds (relative to its root).
PERSONAS = "personas/part-*.parquet"
REJECTS = "rejects/part-*.parquet"
SETTLED = "settled/part-*.parquet"
SKELETONS = "skeletons/part-*.parquet"
PROPOSALS = "proposals/round-*/part-*.parquet"
VERDICTS = "verdicts/round-*/part-*.parquet"


def shard_name(shard: int) -> str:
    return f"part-{shard:05d}.parquet"


def sql_string(text: str | Path) -> str:
    """A SQL string literal (single quotes doubled), for paths DuckDB reads."""
    return "'" + str(text).replace("'", "''") + "'"


def read_parquet_sql(glob: str | Path) -> str:
    """DuckDB's read_parquet over a glob, columns matched by name (shards of older runs may lack some)."""
    return f"read_parquet({sql_string(glob)}, union_by_name = true)"


@dataclass(frozen=True)
class RunFolder:
    root: Path

    @classmethod
    def existing(cls, path: Path, field: str = "RUN_DIR") -> RunFolder:
        """A folder `populace build` wrote, or a UserInputError naming the argument."""
        run = cls(Path(path))
        if not run.is_run():
            raise UserInputError(
                str(path), field, "not a run folder (no manifest.json)", "pass a folder written by populace build"
            )
        return run

    def is_run(self) -> bool:
        return self.manifest.is_file()

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def catalog(self) -> Path:
        return self.root / "corpus.duckdb"

    @property
    def card(self) -> Path:
        return self.root / "README.md"

    @property
    def report_page(self) -> Path:
        return self.root / "report" / "index.html"

    @property
    def evaluation(self) -> Path:
        """evaluation.json and comparison.png of `populace evaluate`."""
        return self.root / "evaluation"

    @property
    def dedup_index(self) -> Path:
        """The kept personas' dedup features, for later runs that deduplicate against this one."""
        return self.root / "dedup" / "index"

    def clusters(self, wave: int) -> Path:
        """Duplicate clusters of every persona accepted up to `wave`."""
        return self.root / "dedup" / f"wave-{wave}" / "clusters.parquet"

    @property
    def over_quota(self) -> Path:
        """Kept personas beyond their stratum's quota after the last wave (rejected as over_quota)."""
        return self.root / "dedup" / "over-quota.parquet"

    def features(self, shard: int) -> Path:
        """A shard's dedup features (signatures, vectors, text hashes)."""
        return self.stage_shard("dedup/features", shard)

    def stage_shard(self, stage: str, shard: int) -> Path:
        return self.root / stage / shard_name(shard)

    def round_shard(self, stage: str, round_no: int, shard: int) -> Path:
        return self.root / stage / f"round-{round_no}" / shard_name(shard)

    def has_files(self, pattern: str) -> bool:
        return any(self.root.glob(pattern))

    def glob_sql(self, pattern: str) -> str:
        """The absolute glob of `pattern` as a SQL string literal (valid from any working directory)."""
        return sql_string(self.root.resolve() / pattern)

    def parquet_sql(self, pattern: str) -> str:
        """read_parquet(...) over the shards matching `pattern` (see `has_files` for whether there are any)."""
        return read_parquet_sql(self.root.resolve() / pattern)

    def read_manifest(self) -> dict[str, Any]:
        return orjson.loads(self.manifest.read_bytes()) if self.manifest.is_file() else {}

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_bytes_atomically(orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS), self.manifest)

    def update_manifest(self, changes: dict[str, Any]) -> dict[str, Any]:
        manifest = {**self.read_manifest(), **changes}
        self.write_manifest(manifest)
        return manifest

    def mark_stage_done(self, stage: str) -> None:
        """Record progress in the manifest, so an operator sees how far an interrupted run got."""
        manifest = self.read_manifest()
        manifest.setdefault("stages", {})[stage] = "done"
        self.write_manifest(manifest)


def run_id_for(cfg: RunConfig) -> str:
    return f"{cfg.name}-{cfg.fingerprint()[:10]}"


def run_root(cfg: RunConfig, out: Path | None) -> Path:
    """Where a config's run lives: `out`, else <output_dir>/<name>-<fingerprint>."""
    return Path(out) if out else Path(cfg.output_dir) / run_id_for(cfg)


def prepare_run_folder(cfg: RunConfig, out: Path | None) -> RunFolder:
    """The run folder for this config; a rerun of the same config resumes in the same one, and a
    folder holding anything else is refused."""
    root = run_root(cfg, out)
    run = RunFolder(root)
    if run.is_run():
        if run.read_manifest().get("fingerprint") != cfg.fingerprint():
            raise UserInputError(
                str(root),
                "config",
                "this folder holds a run of a different config",
                "use another --out folder, or the config that made this run",
            )
    elif root.exists() and any(p.name != LOCK_NAME for p in root.iterdir()):
        raise UserInputError(
            str(root), "--out", "folder exists, is not empty and is not a populace run", "choose an empty or new folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    if not run.is_run():
        # The manifest goes first: it is what marks the folder as this config's run.
        run.write_manifest({"run_id": root.name, "fingerprint": cfg.fingerprint(), "stages": {}})
        write_bytes_atomically(cfg.to_yaml().encode(), run.config)
    return run
