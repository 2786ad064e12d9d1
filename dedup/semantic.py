"""Embedding near-duplicates: FAISS inner product on unit vectors (cosine), GPU when present.

The vectors may be an in-memory array or a lazy column read block by block from feature shards;
either way they are passed over a few times (the mean with the queries or the training sample, then
the new rows into the index, then every row as a query) and never held whole, so the memory is the
index's, which holds only the new rows (or, when the search is exact, the queries' alone).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faiss
import numpy as np

from dedup.lazy_rows import blocks
from dedup.pairs import DuplicatePair

# Exact search costs queries x vectors; beyond 10k x 10k an IVF. Measured on the load generator's
# corpora on 2 cores: exact against the IVF below, 2.1 s against 0.5 s at 20k (the same 7 pairs),
# 11.7 s against 1.8 s at 50k (38 pairs) and 58 s against 4.5 s at 100k (150 pairs): none missed.
# Against 4 sqrt(n) lists, 64 training rows per list and 16 probed, 16 training rows per list and
# 8 probed found the same 558 pairs at 200k in half the time (10 s against 19 s) and 13,604 of
# 13,605 at 1M (92 s against 149 s; 3 missed, 2 others found).
# A backfill wave pairs only its few new rows with the corpus: exact while within the same budget
# (37 x 20k), else an IVF of the new rows that every row queries. 10k new rows against 190k: the
# same 52 pairs as exact search, the process's peak 353 MB against 482 MB for an index of every row
# (an index of 1M rows holds 0.5 GB), in 10.7 s against 8.9 s.
EXACT_LIMIT = 10_000
EXACT_BUDGET = EXACT_LIMIT * EXACT_LIMIT
MIN_ROWS_TO_CENTER = 64  # below this the batch mean is too noisy to remove
LISTS_PER_ROOT = 4  # IVF lists per sqrt(queries)
TRAIN_PER_LIST = 16  # k-means training rows per list (FAISS asks for 39 to place centroids well)
PROBES = 8  # lists searched per query
# k-means iterations placing the lists (FAISS's default is 25): 10 found the same 558 pairs at 200k,
# 4 s sooner; where a centroid sits matters little when 8 lists are probed.
KMEANS_ITERATIONS = 10
THREADS = max(1, faiss.omp_get_max_threads())  # threads that share a preassigned search


def gpus() -> int:
    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


def mean_and_rows(
    vectors: Sequence[Any] | np.ndarray, chosen: Callable[[np.ndarray], np.ndarray], center: bool
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """One pass over the vectors: their column mean (when centring), and the rows `chosen(positions)`
    selects in each block, raw, with their positions (the queries or the training sample: taken in
    the same pass as the mean, not in one of their own)."""
    total: np.ndarray | None = None
    positions_of: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    for positions, block in blocks(vectors):
        block = np.asarray(block)
        if center:
            part = block.sum(axis=0, dtype=np.float64)
            total = part if total is None else total + part
        keep = chosen(positions)
        positions_of.append(positions[keep])
        rows.append(block[keep])
    mean = None if total is None else (total / len(vectors)).astype(np.float32)
    return mean, np.concatenate(positions_of), np.concatenate(rows)


def unit_rows(block: np.ndarray, mean: np.ndarray | None) -> np.ndarray:
    """float32 rows, the batch's common direction removed and re-normalised when `mean` is given.

    Centring, measured on the reference corpora (1.5k-14k-character records): at cosine 0.9 the
    static embedder flagged 29-89% of records as duplicates uncentred and 0-4% centred, against
    1-9% for the full MiniLM."""
    rows = np.ascontiguousarray(block, dtype=np.float32)
    if mean is None:
        return rows
    centred: np.ndarray = rows - mean
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    np.divide(centred, norms, out=centred, where=norms > 0)  # a row of norm 0 is all zeros already
    return centred


def knn(queries: np.ndarray, corpus: np.ndarray, k: int, gpu: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest by inner product of queries in one block of the corpus (on the GPU resources
    given, if any)."""
    if gpu is not None:
        return faiss.knn_gpu(gpu, queries, corpus, k, metric=faiss.METRIC_INNER_PRODUCT)
    return faiss.knn(queries, corpus, k, metric=faiss.METRIC_INNER_PRODUCT)


def exact_neighbours(
    vectors: Sequence[Any] | np.ndarray, center: bool, first_new: int, k: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The k nearest of every row from `first_new` on, by brute force over the corpus block by block."""
    mean, positions, rows = mean_and_rows(vectors, lambda positions: positions >= first_new, center)
    queries = np.empty((len(vectors) - first_new, rows.shape[1]), dtype=np.float32)
    queries[positions - first_new] = unit_rows(rows, mean)
    del rows
    heap = faiss.ResultHeap(len(queries), k, keep_max=True)
    gpu = faiss.StandardGpuResources() if gpus() else None  # one per search, not one per block
    for positions, block in blocks(vectors):
        sims, ids = knn(queries, unit_rows(np.asarray(block), mean), min(k, len(positions)), gpu)
        heap.add_result(sims, np.where(ids >= 0, positions[np.maximum(ids, 0)], -1))
    heap.finalize()
    yield np.arange(first_new, len(vectors)), heap.D, heap.I


def approximate_neighbours(
    vectors: Sequence[Any] | np.ndarray, center: bool, first_new: int, k: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The k nearest new rows (from `first_new` on) of every row, through an IVF index of the new
    rows alone (4 sqrt(new rows) lists, 8 probed).

    Pairs are symmetric, so a new row paired with an existing one is found as well from the existing
    row's side: the index holds only what is new (a backfill wave's few thousand rows, not the million
    it is checked against) and every row queries it, each block as it is read. Filling costs the new
    rows x lists and searching all rows x (lists + probed rows). The index keeps its vectors as
    float16 (similarities move by ~1e-3) and is trained on a fixed-seed sample of all rows."""
    n = len(vectors)
    new_rows = n - first_new
    nlist = int(LISTS_PER_ROOT * math.sqrt(new_rows))
    sampled = np.zeros(n, dtype=bool)  # a mask, not np.isin per block (6 s of a 1M dedup)
    sampled[np.random.default_rng(0).choice(n, size=min(n, nlist * TRAIN_PER_LIST), replace=False)] = True
    mean, _, rows = mean_and_rows(vectors, lambda positions: sampled[positions], center)
    train = unit_rows(rows, mean)
    dim = train.shape[1]
    ivf = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    ivf.cp.min_points_per_centroid = TRAIN_PER_LIST  # no warning: fewer is enough to find near-duplicates
    ivf.cp.niter = KMEANS_ITERATIONS
    ivf.train(train)
    ivf.nprobe = PROBES
    del train, rows
    if gpus():
        index = faiss.index_cpu_to_all_gpus(ivf)
        for positions, block in blocks(vectors, first_new):
            index.add_with_ids(unit_rows(np.asarray(block), mean), positions.astype(np.int64))
        for positions, block in blocks(vectors):
            sims, ids = index.search(unit_rows(np.asarray(block), mean), k)
            yield positions, sims, ids
        return
    # The coarse search is a third of the whole: a new row's probed lists, found when it is added
    # (to the nearest), are kept for its search; an existing row's are found as it queries.
    to_lists_of = np.empty((new_rows, PROBES), dtype=np.float32)
    lists_of = np.empty((new_rows, PROBES), dtype=np.int64)
    for positions, block in blocks(vectors, first_new):
        rows = unit_rows(np.asarray(block), mean)
        to_lists, lists = ivf.quantizer.search(rows, PROBES)
        nearest = np.ascontiguousarray(lists[:, 0])
        ids = positions.astype(np.int64)
        ivf.add_core(len(rows), faiss.swig_ptr(rows), faiss.swig_ptr(ids), faiss.swig_ptr(nearest))
        to_lists_of[positions - first_new], lists_of[positions - first_new] = to_lists, lists
    with ThreadPoolExecutor(THREADS) as pool:
        for positions, block in blocks(vectors):
            queries = unit_rows(np.asarray(block), mean)
            to_lists = np.empty((len(positions), PROBES), dtype=np.float32)
            lists = np.empty((len(positions), PROBES), dtype=np.int64)
            new = positions >= first_new
            added = positions[new] - first_new  # rows of the index, whose probed lists are known
            to_lists[new], lists[new] = to_lists_of[added], lists_of[added]
            if not new.all():
                to_lists[~new], lists[~new] = ivf.quantizer.search(queries[~new], PROBES)
            sims, ids = search_preassigned(pool, ivf, queries, k, lists, to_lists)
            yield positions, sims, ids


def search_preassigned(
    pool: ThreadPoolExecutor, ivf: Any, rows: np.ndarray, k: int, lists: np.ndarray, to_lists: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """IVF search of rows whose probed lists are known, a slice per thread: FAISS runs a preassigned
    search on one core (measured at 200k: 3.8 s on 2 threads, 7.6 s on one, 5.9 s for a plain
    search that finds the lists again). `ivf` is Any: FAISS's stubs give the C++ signature, its Python
    wrapper takes (x, k, Iq, Dq)."""
    bounds = np.linspace(0, len(rows), THREADS + 1, dtype=int)
    parts = list(
        pool.map(
            lambda lo, hi: ivf.search_preassigned(rows[lo:hi], k, lists[lo:hi], to_lists[lo:hi]),
            bounds[:-1],
            bounds[1:],
        )
    )
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def semantic_pairs(
    vectors: Sequence[Any] | np.ndarray, threshold: float, neighbours: int, first_new: int = 0, center: bool = False
) -> list[DuplicatePair]:
    """Pairs (i, j), i < j, with cosine >= threshold among each new row's k nearest neighbours.

    Rows before `first_new` are an existing corpus: paired with new rows only, never with each other
    (the exact search queries the new rows against every row, the IVF every row against the new
    rows). With `center`, the mean of all rows is removed first (from 64 rows on; below, the mean is
    too noisy)."""
    n = len(vectors)
    if n < 2 or first_new >= n:  # nothing to compare, or no new row to query
        return []
    k = min(neighbours + 1, n)
    search = exact_neighbours if (n - first_new) * n <= EXACT_BUDGET else approximate_neighbours
    pairs: dict[tuple[int, int], float] = {}
    for queried, sims, ids in search(vectors, center and n >= MIN_ROWS_TO_CENTER, first_new, k):
        hits = (ids >= 0) & (ids != queried[:, None]) & (sims >= threshold)
        for row, column in zip(*np.nonzero(hits), strict=True):
            i, j = int(queried[row]), int(ids[row, column])
            key = (min(i, j), max(i, j))
            pairs[key] = max(pairs.get(key, -1.0), float(min(sims[row, column], 1.0)))
    return [DuplicatePair(a, b, "semantic", s) for (a, b), s in sorted(pairs.items())]
