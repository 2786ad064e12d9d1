"""A duplicate pair as every layer reports it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DuplicatePair:
    """Items a and b (row indices) are duplicates in `layer` with this similarity."""

    a: int
    b: int
    layer: str
    similarity: float
