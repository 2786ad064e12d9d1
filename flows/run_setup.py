"""Resolve where a run lives and refuse to mix two different configs in one folder."""

from __future__ import annotations

from pathlib import Path

from corpus.run_folder import RunFolder, write_bytes_atomically
from corpus.run_lock import LOCK_NAME
from schemas.config import RunConfig
from schemas.errors import UserInputError


def run_id_for(cfg: RunConfig) -> str:
    return f"{cfg.name}-{cfg.fingerprint()[:10]}"


def prepare_run_folder(cfg: RunConfig, out: Path | None) -> RunFolder:
    """The run folder for this config; a rerun of the same config resumes in the same one."""
    root = Path(out) if out else Path(cfg.output_dir) / run_id_for(cfg)
    run = RunFolder(root)
    if run.manifest.is_file():
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
    if not run.manifest.is_file():
        # The manifest goes first: it is what marks the folder as this config's run.
        run.write_manifest({"run_id": root.name, "fingerprint": cfg.fingerprint(), "stages": {}})
        write_bytes_atomically(cfg.to_yaml().encode(), run.config)
    return run
