"""Population presets: census marginals (single or joint tables) used as quota targets."""

from __future__ import annotations

import math
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foundation.resources import package_path
from foundation.yaml_text import load_yaml
from schemas.errors import UserInputError
from taxonomy.model import Taxonomy

PRESET_DIR = package_path("taxonomy", "populations")
VALUE_JOIN = "|"
MAX_PRESET_BYTES = 16 * 2**20


class Marginal(BaseModel):
    """Shares over the joint values of one or more attributes; keys join values with '|'."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    attributes: list[str] = Field(min_length=1)
    universe: str = ""
    citation: str = Field(min_length=1, description="Table and year the shares come from.")
    note: str = ""
    shares: dict[str, float]

    def cells(self) -> dict[tuple[str, ...], float]:
        return {tuple(key.split(VALUE_JOIN)): share for key, share in self.shares.items()}


class PopulationPreset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str = ""
    marginals: list[Marginal] = Field(min_length=1)


def preset_path(ref: str) -> Path:
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return path
    return PRESET_DIR / f"{ref}.yaml"


def load_preset(ref: str, taxonomy: Taxonomy) -> PopulationPreset:
    """Read a preset and check every table against the taxonomy (ids, values, shares)."""
    path = preset_path(ref)
    if not path.is_file():
        shipped = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
        raise UserInputError(
            str(path), "quotas.preset", "no such population preset", f"use one of {shipped} or a YAML path"
        )
    if path.stat().st_size > MAX_PRESET_BYTES:
        raise UserInputError(
            str(path),
            "<file>",
            f"is larger than {MAX_PRESET_BYTES // 2**20} MiB",
            "a preset holds census shares, a few thousand lines at most",
        )
    try:
        text = path.read_text(encoding="utf-8")
        raw = load_yaml(text) if text.strip() else None
        if raw is None:
            raise UserInputError(
                str(path),
                "<file>",
                "is empty",
                "write the preset as YAML; see data/populations/us_adults.yaml for the format",
            )
        preset = PopulationPreset.model_validate(raw)
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserInputError(
            str(path), "<file>", f"not readable YAML ({exc.__class__.__name__})", "save the preset as UTF-8 YAML"
        ) from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserInputError(
            str(path),
            ".".join(map(str, err["loc"])) or "<root>",
            err["msg"],
            "see data/populations/us_adults.yaml for the format",
        ) from exc
    known = taxonomy.attributes()
    for i, marginal in enumerate(preset.marginals):
        field = f"marginals.{i}"
        for attr_id in marginal.attributes:
            if attr_id not in known:
                raise UserInputError(
                    str(path),
                    f"{field}.attributes",
                    f"'{attr_id}' is not in taxonomy {taxonomy.name}",
                    "use attribute ids of the run's taxonomy",
                )
        total = sum(marginal.shares.values())
        if not math.isclose(total, 1.0, abs_tol=1e-4) or any(s < 0 for s in marginal.shares.values()):
            raise UserInputError(
                str(path), f"{field}.shares", f"shares sum to {total:.6g}", "give non-negative shares that sum to 1"
            )
        for key in marginal.cells():
            if len(key) != len(marginal.attributes):
                raise UserInputError(
                    str(path),
                    f"{field}.shares.{VALUE_JOIN.join(key)}",
                    f"has {len(key)} values for {len(marginal.attributes)} attributes",
                    f"join one value per attribute with '{VALUE_JOIN}'",
                )
            for attr_id, value in zip(marginal.attributes, key, strict=True):
                if value not in known[attr_id].values:
                    raise UserInputError(
                        str(path),
                        f"{field}.shares.{VALUE_JOIN.join(key)}",
                        f"'{value}' is not a value of {attr_id}",
                        f"use values from {sorted(known[attr_id].values)}",
                    )
    return preset
