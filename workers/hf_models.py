"""Hugging Face model folders for engines that cannot read GGUF (vLLM).

A folder path is used as it is. A packaged model name or a .gguf path is converted once into a
safetensors folder in the user cache (dequantized to bfloat16 with transformers) and reused from
then on; nothing is downloaded. The folder appears whole or not at all (written beside, then
renamed), so two workers converting at once, or a killed conversion, leave no half model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from schemas.errors import UserInputError
from workers.models import resolve_model_path


def model_cache_root() -> Path:
    base = os.environ.get("POPULACE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "populace"
    )
    return Path(base) / "hf-models"


def model_source(model: str) -> Path:
    """backend.model as a Hugging Face folder or a GGUF file, or a UserInputError saying what is wrong."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserInputError(
                "run config",
                "backend.model",
                f"folder '{model}' holds no config.json",
                "point backend.model at a Hugging Face model folder (config.json, *.safetensors, tokenizer files)",
            )
        return path
    return resolve_model_path(model)


def hf_model_folder(model: str) -> Path:
    """The safetensors folder for backend.model: a folder as given, else the cached conversion of its GGUF."""
    gguf = model_source(model)
    if gguf.is_dir():  # already a model folder
        return gguf
    folder = model_cache_root() / f"{gguf.stem}-{gguf_fingerprint(gguf)}"
    if not (folder / "config.json").is_file():
        convert_gguf(gguf, folder)
    return folder


def gguf_fingerprint(gguf: Path) -> str:
    """Names the conversion after the file's size and first megabyte: a changed model converts anew."""
    digest = hashlib.sha256(str(gguf.stat().st_size).encode())
    with gguf.open("rb") as handle:
        digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:12]


def convert_gguf(gguf: Path, folder: Path) -> None:
    """Dequantize a GGUF into a bfloat16 safetensors folder with its tokenizer and chat template."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # a worker's log is no place for per-tensor progress bars
    transformers_logging.disable_progress_bar()
    source = {"pretrained_model_name_or_path": str(gguf.parent), "gguf_file": gguf.name}
    config = AutoConfig.from_pretrained(**source)
    tokenizer = AutoTokenizer.from_pretrained(**source)
    quantized = AutoModelForCausalLM.from_pretrained(**source, dtype=torch.float32)  # GGUF kernels compute in fp32
    # transformers refuses to save a model it loaded from GGUF: copy the weights into a plain one.
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(quantized.state_dict())
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(folder)
        except OSError:  # another worker finished the same conversion first
            if not (folder / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
