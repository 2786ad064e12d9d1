"""Columnar skeletons (one code array per attribute) and turning codes back into strings."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from taxonomy.model import Attribute
from taxonomy.quotas import QuotaCell


@dataclass
class SkeletonBatch:
    """Columnar skeletons: per attribute an int code into its domain (-1: absent) or, for
    numeric attributes, a float (NaN: absent); text attributes left for the LLM are flagged."""

    seed: int
    slots: np.ndarray
    cells: list[QuotaCell]
    attempts: np.ndarray
    codes: dict[str, np.ndarray] = field(default_factory=dict)
    open_text: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.slots)


def domain_of(attr: Attribute) -> list[str]:
    return list(attr.values)


def present_mask(values: np.ndarray) -> np.ndarray:
    """Rows that hold a value: a code >= 0, or a number that is not NaN."""
    return ~np.isnan(values) if values.dtype.kind == "f" else values >= 0


def value_strings(attr: Attribute, values: np.ndarray) -> pa.Array:
    """An Arrow string column for one attribute (null where absent)."""
    if attr.kind == "numeric":
        return pa.array(_numeric_strings(values, ~np.isnan(values)), type=pa.string())
    dictionary = pa.array(domain_of(attr), type=pa.string())
    indices = pa.array(values, mask=values < 0, type=pa.int32())
    return pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string())


def _numeric_strings(values: np.ndarray, present: np.ndarray) -> list[str | None]:
    as_int = np.where(present, values, 0).astype(np.int64)
    text = as_int.astype(str)
    return [t if p else None for t, p in zip(text.tolist(), present.tolist(), strict=True)]
