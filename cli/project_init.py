"""`populace init DIR`: the example configs, Prefect deployments and work-pool template, for a folder
outside a checkout (the installed wheel carries them as package data)."""

from __future__ import annotations

from pathlib import Path

from foundation.atomic_files import write_bytes_atomically
from foundation.resources import package_path
from schemas.errors import UserInputError

# Where each packaged example lands in the new folder: the same layout as a checkout, so
# prefect.yaml's paths (configs/..., infra/prefect/...) hold in both.
EXAMPLES = {
    "configs/demo.yaml": ("configs", "demo.yaml"),
    "configs/cluster.yaml": ("configs", "cluster.yaml"),
    "prefect.yaml": ("prefect.yaml",),
    "infra/prefect/process-work-pool.json": ("process-work-pool.json",),
}


def init_project(folder: Path, overwrite: bool = False) -> list[Path]:
    """Write the examples into `folder`; refuses (writing nothing) when one would replace a file."""
    if folder.exists() and not folder.is_dir():
        raise UserInputError(str(folder), "<folder>", "is a file", "pass a folder path")
    targets = {folder / relative: package_path("flows", "examples", *source) for relative, source in EXAMPLES.items()}
    existing = [str(target) for target in targets if target.exists()]
    if existing and not overwrite:
        raise UserInputError(
            existing[0],
            "<file>",
            f"already exists ({len(existing)} of the example files do)",
            "pick an empty folder, or pass --force to replace the examples",
        )
    return [write_bytes_atomically(source.read_bytes(), target) for target, source in targets.items()]
