"""Deterministic draws: every random number is a hash of (seed, slot, stream, attempt).

A slot's draw does not depend on which other slots are drawn with it, on the batch size or on
the shard layout, so resumed runs, backfill waves and `populace sample` agree slot by slot.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def persona_id_for(seed: int, slot: int) -> str:
    """Deterministic id of a slot: the same seed and slot always give the same id."""
    return "p-" + hashlib.sha256(f"populace:{seed}:{slot}".encode()).hexdigest()[:16]


def stream_of(name: str) -> int:
    """A stable 64-bit stream number per attribute (or other named draw)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective scramble of 64-bit integers."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    mixed: npt.NDArray[np.uint64] = x ^ (x >> np.uint64(31))
    return mixed


def uniforms(seed: int, slots: np.ndarray, stream: int, attempts: np.ndarray | int = 0) -> np.ndarray:
    """U[0, 1) per element, a pure function of (seed, slot, stream, attempt)."""
    with np.errstate(over="ignore"):
        x = _mix(np.asarray(slots, dtype=np.uint64) * _GOLDEN + np.uint64(stream))
        x = _mix(x ^ np.uint64(seed) * _M1)
        x = _mix(x ^ np.asarray(attempts, dtype=np.uint64) * _M2)
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
