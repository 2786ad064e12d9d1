"""MinHash-LSH on token sets: bulk signatures, bands from the S-curve, exact verification."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from dedup.lazy_rows import blocks
from dedup.pairs import DuplicatePair
from foundation.resources import package_path

SEED = 1
# datasketch's bijective 32-bit permutations: no collision bias on large sets, uint32 storage.
SCHEME = "affine32"


def hash32(data: bytes) -> int:
    """xxHash32: several times faster than datasketch's default SHA-1 per token."""
    return xxhash.xxh32_intdigest(data)


@lru_cache(maxsize=64)
def choose_bands(threshold: float, num_perm: int, fp_weight: float = 0.1, fn_weight: float = 0.9) -> tuple[int, int]:
    """(bands, rows) minimising weighted false-positive + false-negative area of the S-curve.

    P(candidate | Jaccard s) = 1 - (1 - s**r)**b. False negatives weigh 9x more than false
    positives: a missed duplicate is lost for good, a false candidate costs one exact check.
    For threshold 0.8 and 128 permutations this gives 14 bands of 9 rows (P = 0.87 at s = 0.8,
    0.99 at 0.9, 0.03 at 0.5); distilabel's default 5 x 25 catches only ~31% at s = 0.9.
    """
    grid = np.linspace(0.0, 1.0, 501)
    below, above = grid[grid < threshold], grid[grid >= threshold]
    best, best_cost = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = float(np.trapezoid(1 - (1 - below**rows) ** bands, below)) if below.size > 1 else 0.0
            fn = float(np.trapezoid((1 - above**rows) ** bands, above)) if above.size > 1 else 0.0
            cost = fp_weight * fp + fn_weight * fn
            if cost < best_cost:
                best, best_cost = (bands, rows), cost
    return best


# Token rows hashed at once: a (rows x num_perm) uint32 block stays a few megabytes.
TOKENS_PER_BLOCK = 8192
# The MurmurHash3 32-bit finalizer (datasketch mixes each input hash with it before permuting).
FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))


# The permutations are part of the dedup index's format: signatures stored by one run are compared
# with the next run's. The default's are shipped (datasketch's, checked against it by a test), so
# they stay the same whatever datasketch release is installed, and a worker that computes
# signatures does not import datasketch (~1.5 s: it loads scipy) to get 1 KB of numbers.
PERMUTATIONS_DIR = package_path("dedup", "minhash_permutations")


def shipped_permutations(num_perm: int) -> Path:
    return PERMUTATIONS_DIR / f"seed{SEED}-{SCHEME}-{num_perm}.npy"


@lru_cache(maxsize=8)
def permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine permutations (a, b) for SEED and SCHEME, as uint32 arrays."""
    path = shipped_permutations(num_perm)
    if path.is_file():
        a, b = np.load(path)
        return a, b
    return datasketch_permutations(num_perm)


def datasketch_permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=SEED, scheme=SCHEME, hashfunc=hash32).permutations
    return np.asarray(a, dtype=np.uint32), np.asarray(b, dtype=np.uint32)


def fmix32(values: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = FMIX32
    values = values ^ (values >> s1)
    values = values * m1
    values = values ^ (values >> s2)
    values = values * m2
    mixed: np.ndarray = values ^ (values >> s3)
    return mixed


def signatures(token_sets: Sequence[set[str]], num_perm: int) -> np.ndarray:
    """(n, num_perm) uint32 MinHash values, computed in bulk (persistable, reloadable).

    The same values as datasketch's MinHash(seed=SEED, scheme="affine32", hashfunc=hash32) fed each
    set (an empty set as one empty token), computed for many documents at once: every token's hash
    is mixed and permuted in one numpy block, instead of a MinHash update per document. Documents
    go into blocks by length, each block a (documents x longest x num_perm) array whose padding
    holds the largest value, so each minimum is one contiguous reduction (3x faster than reduceat
    over the ragged rows) and padding stays a small share."""
    out = np.empty((len(token_sets), num_perm), dtype=np.uint32)
    if not token_sets:
        return out
    a, b = permutations(num_perm)
    sets = [tokens or {""} for tokens in token_sets]
    lengths = np.fromiter(map(len, sets), dtype=np.int64, count=len(sets))
    order = np.argsort(lengths, kind="stable")
    start = 0
    while start < len(order):
        # Documents x the block's longest stays within the block, one document even if it alone exceeds it.
        stop = start + 1
        while stop < len(order) and (stop - start + 1) * lengths[order[stop]] <= TOKENS_PER_BLOCK:
            stop += 1
        documents = order[start:stop]
        counts = lengths[documents]
        tokens = itertools.chain.from_iterable(sets[d] for d in documents)
        # hash32 of each token, without a Python frame per token.
        hashes = np.fromiter(
            map(xxhash.xxh32_intdigest, map(str.encode, tokens)), dtype=np.uint32, count=int(counts.sum())
        )
        present = np.arange(counts[-1]) < counts[:, None]  # (documents, longest): which cells hold a token
        padded = np.zeros(present.shape, dtype=np.uint32)
        padded[present] = fmix32(hashes)  # row by row, in the order the hashes were made
        permuted = padded[:, :, None] * a + b  # uint32 arithmetic wraps mod 2^32
        permuted[~present] = np.iinfo(np.uint32).max
        out[documents] = permuted.min(axis=1)
        start = stop
    return out


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


BIG_BUCKET = 50  # beyond this, a bucket is verified as a star and a chain, not all pairs
# Candidate pairs verified per read of their rows' token sets (at most twice as many rows' sets in memory).
PAIRS_PER_READ = 8192
# 64-bit mixing constants (splitmix64's multipliers) for the band keys.
KEY_SEED, KEY_MULTIPLIER, KEY_SHIFT = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(31)


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64: one key per band of `rows` signature values; equal bands, equal keys.

    Eight bytes per band instead of four per value, so LSH holds (bands x 8) bytes per row, not the
    whole signature. Unequal bands collide with probability ~2^-64; a collision only adds a
    candidate, which verification drops."""
    values = sigs[:, : bands * rows].astype(np.uint64).reshape(len(sigs), bands, rows)
    keys = np.full((len(sigs), bands), KEY_SEED, dtype=np.uint64)
    for column in range(rows):
        keys ^= values[:, :, column]
        keys *= KEY_MULTIPLIER  # wraps mod 2^64
        keys ^= keys >> KEY_SHIFT
    return keys


def candidate_pairs(keys: np.ndarray, first_new: int = 0) -> set[tuple[int, int]]:
    """Rows that share at least one band key, found per band with a vectorised sort (np.unique)
    rather than one Python LSH insert and query per row."""
    candidates: set[tuple[int, int]] = set()
    for band in range(keys.shape[1]):
        _, inverse, counts = np.unique(keys[:, band], return_inverse=True, return_counts=True)
        shared = np.flatnonzero(counts[inverse] > 1)
        if shared.size == 0:
            continue
        order = shared[np.argsort(inverse[shared], kind="stable")]
        groups = np.split(order, np.flatnonzero(np.diff(inverse[order])) + 1)
        for members in groups:
            if members[-1] < first_new:  # only existing rows: not ours to pair
                continue
            members = members.tolist()
            pairs: Iterable[tuple[int, int]]
            if len(members) <= BIG_BUCKET:
                pairs = ((a, b) for i, a in enumerate(members) for b in members[i + 1 :])
            else:
                pairs = [(members[0], b) for b in members[1:]] + list(itertools.pairwise(members))
            candidates.update(p for p in pairs if p[1] >= first_new)
    return candidates


def minhash_pairs(
    token_sets: Callable[[np.ndarray], Sequence[set[str]]],
    sigs: Sequence[Any] | np.ndarray,
    num_perm: int,
    threshold: float,
    layer: str,
    first_new: int = 0,
) -> list[DuplicatePair]:
    """LSH proposes candidates; only pairs whose exact Jaccard >= threshold are returned.

    `sigs` is an (n, num_perm) array or a lazy column of one (read block by block into band keys);
    `token_sets(positions)` gives those rows' sets, so only candidates are ever shingled again, a
    few thousand pairs at a time (a million texts' shingle sets would not fit in memory). Rows before
    `first_new` are an existing corpus: they are indexed but not paired together.
    """
    bands, rows = choose_bands(threshold, num_perm)
    keys = np.empty((len(sigs), bands), dtype=np.uint64)
    for positions, block in blocks(sigs):
        keys[positions] = band_keys(np.asarray(block), bands, rows)
    candidates = sorted(candidate_pairs(keys, first_new))
    del keys
    pairs = []
    for start in range(0, len(candidates), PAIRS_PER_READ):
        chunk = candidates[start : start + PAIRS_PER_READ]
        needed = np.unique(np.asarray(chunk, dtype=np.int64).ravel())
        sets = dict(zip(needed.tolist(), token_sets(needed), strict=True))
        for a, b in chunk:
            similarity = jaccard(sets[a], sets[b])
            if similarity >= threshold:
                pairs.append(DuplicatePair(a, b, layer, similarity))
    return pairs
