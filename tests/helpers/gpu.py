"""Whether this machine has a GPU the `gpu` tests can use."""

from __future__ import annotations

import shutil
import subprocess


def gpu_count() -> int:
    """CUDA GPUs visible here: torch's count where torch is installed, else the GPUs nvidia-smi lists.

    (FAISS cannot tell: the default faiss-cpu answers 0 on a GPU machine too.)"""
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        pass
    if shutil.which("nvidia-smi") is None:
        return 0
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines()) if listing.returncode == 0 else 0
