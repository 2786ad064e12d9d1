"""Dedup over features left on disk: lazy columns, band keys, exact hashes, block-wise semantic search,
streamed index files, and clusters equal to deduplicating everything in memory."""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedup import semantic
from dedup.detect import DedupItems, concat_items, exact_pairs, find_duplicates
from dedup.feature_shards import FeatureShards
from dedup.index_store import load_features, save_index
from dedup.lazy_rows import ChainedRows, blocks, rows_at
from dedup.minhash import band_keys, candidate_pairs, choose_bands, signatures
from dedup.semantic import semantic_pairs
from schemas.config import DedupConfig

WIDTH = 16


def fixed(matrix: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


@pytest.fixture
def shards(tmp_path):
    """Three feature shards of 5, 0 and 4 rows (the empty one without feature columns, as a shard with
    no accepted persona is written), and the same rows in memory."""
    rng = np.random.default_rng(5)
    sizes, paths, rows = [5, 0, 4], [], []
    for shard, size in enumerate(sizes):
        ids = [f"p-{shard}-{i}" for i in range(size)]
        vectors = rng.normal(size=(size, WIDTH)).astype(np.float32)
        sigs = rng.integers(0, 2**32, size=(size, WIDTH), dtype=np.uint32)
        columns = {
            "persona_id": pa.array(ids, pa.string()),
            "warnings": pa.array([(i * 7) % 3 for i in range(size)], pa.int64()),
            "rounds": pa.array([1] * size, pa.int64()),
            "slot": pa.array([shard * 10 + i for i in range(size)], pa.int64()),
            "narrative": pa.array([f"text of {i}" for i in ids], pa.string()),
        }
        if size:
            columns |= {
                "facts": pa.array([[f"k={i}", "x=1"] for i in ids], pa.list_(pa.string())),
                "text_hash": pa.array([hashlib.sha256(i.encode()).hexdigest() for i in ids], pa.string()),
                "text_signatures": fixed(sigs),
                "vectors": fixed(vectors),
            }
            rows += [
                {"id": i, "text": f"text of {i}", "facts": {f"k={i}", "x=1"}, "sig": s, "vec": v, "warnings": w}
                for i, s, v, w in zip(ids, sigs, vectors, columns["warnings"].to_pylist(), strict=True)
            ]
        path = tmp_path / f"part-{shard}.parquet"
        pq.write_table(pa.table(columns), path)
        paths.append(path)
    return FeatureShards(paths), rows


def test_lazy_columns_read_the_rows_of_their_order_by_block_and_by_position(shards):
    features, rows = shards
    assert len(features) == 9 and "fact_signatures" not in features.columns
    order = features.ordered()  # fewest warnings first, then slot
    assert [rows[i]["warnings"] for i in order] == sorted(r["warnings"] for r in rows)
    subset = order[[6, 0, 3, 8]]  # a selection in its own order, across both non-empty shards
    items = features.items(subset)
    assert items.ids == [rows[i]["id"] for i in subset]

    def gathered(column):
        out: dict[int, object] = {}
        for positions, values in blocks(column):
            out.update(zip(positions.tolist(), values, strict=True))
        return [out[i] for i in range(len(column))]

    assert gathered(items.texts) == [rows[i]["text"] for i in subset]
    assert list(items.texts) == gathered(items.texts) and items.texts[1:3] == gathered(items.texts)[1:3]
    assert np.array_equal(np.array(gathered(items.vectors)), np.array([rows[i]["vec"] for i in subset]))
    tail = {
        p: v
        for positions, block in blocks(items.vectors, 2)
        for p, v in zip(positions.tolist(), block.tolist(), strict=True)
    }
    assert tail == {p: list(rows[subset[p]]["vec"]) for p in (2, 3)}  # from position 2 on, whichever shards hold them
    ask = np.array([3, 1, 1, 0])
    assert rows_at(items.facts, ask) == [rows[subset[i]]["facts"] for i in ask]
    assert np.array_equal(rows_at(items.text_signatures, ask), np.array([rows[subset[i]]["sig"] for i in ask]))
    assert items.texts[-1] == rows[subset[-1]]["text"] and rows_at(items.vectors, np.array([], int)).shape == (0, WIDTH)


def test_chained_columns_mix_memory_and_disk(shards):
    features, _ = shards
    lazy = features.items(features.ordered()).text_signatures
    memory = np.arange(3 * WIDTH, dtype=np.uint32).reshape(3, WIDTH)
    chained = ChainedRows(memory, lazy)
    expected = np.vstack([memory, rows_at(lazy, np.arange(len(lazy)))])
    ask = np.array([10, 0, 4, 2, 3])
    assert np.array_equal(rows_at(chained, ask), expected[ask])
    seen = np.zeros(len(chained), dtype=int)
    for positions, block in blocks(chained):
        assert np.array_equal(np.asarray(block), expected[positions])
        seen[positions] += 1
    assert (seen == 1).all()
    texts = ChainedRows(["a"], features.items(features.ordered()).texts)
    assert rows_at(texts, np.array([1, 0])) == [texts[1], "a"]


def test_band_keys_propose_exactly_the_rows_that_share_a_band():
    rng = np.random.default_rng(2)
    base = [set(rng.integers(0, 400, size=60).astype(str)) for _ in range(80)]
    sets = base + [s | {"extra"} for s in base[:20]] + [set(list(s)[:50]) for s in base[20:30]]
    sigs = signatures(sets, 128)
    bands, rows = choose_bands(0.8, 128)
    expected = set()
    for band in range(bands):
        values = [tuple(s[band * rows : (band + 1) * rows]) for s in sigs]
        expected |= {(a, b) for a, b in itertools.combinations(range(len(sets)), 2) if values[a] == values[b]}
    assert candidate_pairs(band_keys(sigs, bands, rows)) == expected and len(expected) >= 20
    assert candidate_pairs(band_keys(sigs, bands, rows), first_new=90) == {p for p in expected if p[1] >= 90}


def test_exact_pairs_pair_each_later_copy_with_the_first():
    hashes = [hashlib.sha256(str(v).encode()).hexdigest() for v in [1, 2, 1, 3, 2, 1]]
    assert {(p.a, p.b) for p in exact_pairs(hashes, 0)} == {(0, 2), (1, 4), (0, 5)}
    assert {(p.a, p.b) for p in exact_pairs(hashes, 4)} == {(1, 4), (0, 5)}


def planted(n: int, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors[n - 10 :] = vectors[:10] + 0.01 * rng.normal(size=(10, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, {(i, n - 10 + i) for i in range(10)}


def test_semantic_search_by_blocks_equals_brute_force(monkeypatch):
    vectors, _ = planted(3000)
    monkeypatch.setattr("dedup.lazy_rows.BLOCK_ROWS", 700)  # several blocks, the last a short one
    sims = vectors @ vectors.T
    expected = {(i, j) for i in range(3000) for j in range(i + 1, 3000) if sims[i, j] >= 0.95}
    assert {(p.a, p.b) for p in semantic_pairs(vectors, 0.95, 10)} == expected
    # Against an existing corpus: only pairs that reach a new row, the corpus from disk-like chained blocks.
    chained = ChainedRows(vectors[:2000], vectors[2000:])
    assert {(p.a, p.b) for p in semantic_pairs(chained, 0.95, 10, first_new=2000)} == {
        p for p in expected if p[1] >= 2000
    }
    assert semantic_pairs(chained, 0.95, 10, first_new=3000) == []  # a backfill wave that kept no one


def test_large_corpora_search_an_ivf_filled_block_by_block(monkeypatch):
    vectors, twins = planted(6000)
    monkeypatch.setattr(semantic, "EXACT_BUDGET", 1000)  # force the approximate search
    monkeypatch.setattr("dedup.lazy_rows.BLOCK_ROWS", 1000)
    pairs = semantic_pairs(vectors, 0.95, 10)
    assert {(p.a, p.b) for p in pairs} == twins
    assert all(abs(p.similarity - float(vectors[p.a] @ vectors[p.b])) < 1e-2 for p in pairs)  # float16 storage
    centred = semantic_pairs(vectors, 0.95, 10, center=True)
    assert {(p.a, p.b) for p in centred} == twins


def test_a_backfill_through_the_ivf_indexes_only_its_new_rows(monkeypatch):
    vectors, twins = planted(6000)
    monkeypatch.setattr(semantic, "EXACT_BUDGET", 1000)
    lists: list[int] = []
    indexes: list = []
    make_index = semantic.faiss.IndexIVFScalarQuantizer

    def recording(quantizer, dim, nlist, *args):
        lists.append(nlist)
        indexes.append(make_index(quantizer, dim, nlist, *args))
        return indexes[-1]

    monkeypatch.setattr(semantic.faiss, "IndexIVFScalarQuantizer", recording)
    # The twins' second halves are the new rows; their first halves are in the existing corpus.
    chained = ChainedRows(vectors[:5990], vectors[5990:])
    assert {(p.a, p.b) for p in semantic_pairs(chained, 0.95, 10, first_new=5990)} == twins
    assert lists == [int(4 * 10**0.5)]  # 4 sqrt(10 new rows), not 4 sqrt(6,000 rows)
    assert indexes[0].ntotal == 10  # only the new rows are indexed; the corpus queries them
    assert {(p.a, p.b) for p in semantic_pairs(vectors, 0.95, 10)} == twins
    assert lists[1] == int(4 * 6000**0.5)  # a first wave: every row is a query
    centred = semantic_pairs(chained, 0.95, 10, first_new=5990, center=True)  # the backfill, centred
    assert {(p.a, p.b) for p in centred} == twins and indexes[2].ntotal == 10


def test_clusters_from_disk_equal_clusters_in_memory(shards, tmp_path):
    features, rows = shards
    order = features.ordered()
    lazy = features.items(order)
    lazy.texts = ChainedRows([], lazy.texts)
    memory = DedupItems(
        ids=[rows[i]["id"] for i in order],
        texts=[rows[i]["text"] for i in order],
        ranks=[float(i) for i in range(len(order))],
        facts=[rows[i]["facts"] for i in order],
    )
    memory.vectors = np.array([rows[i]["vec"] for i in order])
    cfg = DedupConfig(num_perm=WIDTH, semantic=True, facts=False, cosine_threshold=0.3, minhash_threshold=0.2)
    memory.text_signatures = signatures([{rows[i]["text"]} for i in order], WIDTH)
    lazy.text_signatures = memory.text_signatures  # the shards' random signatures pair nothing; these do
    memory.text_hashes = [hashlib.sha256(rows[i]["id"].encode()).hexdigest() for i in order]
    clusters = find_duplicates(memory, cfg).to_pylist()
    assert find_duplicates(lazy, cfg).to_pylist() == clusters
    assert 0 < sum(not c["kept"] for c in clusters) < len(clusters)
    # The index a finished run stores, written block by block from the lazy columns, loads back equal.
    save_index(tmp_path / "index", features.items(order), {"num_perm": WIDTH, "shingles": {}, "embedder": "e"})
    loaded = load_features(
        tmp_path / "index",
        DedupItems(ids=list(memory.ids), texts=memory.texts, ranks=memory.ranks),
        {"num_perm": WIDTH, "shingles": {}, "embedder": "e"},
    )
    assert np.array_equal(loaded.vectors, memory.vectors)
    assert loaded.fact_signatures is None and loaded.text_signatures is not None
    both = concat_items(loaded, features.items(order))
    assert isinstance(both.vectors, ChainedRows) and len(both.vectors) == 2 * len(order)


def test_a_backfill_through_the_ivf_reads_its_new_rows_from_disk_like_memory(shards, monkeypatch):
    """The kept corpus and the new rows as two lazy columns of the same shards (as a backfill wave's
    dedup has them): the IVF indexes the new rows read from their shards alone, and every row queries it."""
    features, rows = shards
    order = features.ordered()
    kept, new = order[:5], order[5:]
    monkeypatch.setattr(semantic, "EXACT_BUDGET", 1)  # force the approximate search
    lazy = ChainedRows(features.items(kept).vectors, features.items(new).vectors)
    memory = np.array([rows[i]["vec"] for i in (*kept, *new)], dtype=np.float32)
    expected = {(p.a, p.b) for p in semantic_pairs(memory, 0.3, 10, first_new=5)}
    assert {(p.a, p.b) for p in semantic_pairs(lazy, 0.3, 10, first_new=5)} == expected
    assert expected and all(b >= 5 for _, b in expected)  # some pairs, each reaching a new row


def test_fact_lists_read_maps_and_entry_lists_sliced_or_not():
    from dedup.detect import fact_set
    from dedup.shard_features import fact_lists

    maps = pa.array([[("a", "1"), ("b", "2")], None, [("c", "3")]], type=pa.map_(pa.string(), pa.string()))
    entries = pa.array([[{"key": "a", "value": "1"}], [{"key": "b", "value": "2"}, {"key": "c", "value": "3"}]])
    assert fact_lists(pa.chunked_array([maps])).to_pylist() == [["a=1", "b=2"], None, ["c=3"]]
    assert fact_lists(pa.chunked_array([maps.slice(2), maps.slice(0, 1)])).to_pylist() == [["c=3"], ["a=1", "b=2"]]
    sliced = fact_lists(pa.chunked_array([entries.slice(1)])).to_pylist()
    assert [set(f) for f in sliced] == [fact_set(entries.slice(1).to_pylist()[0])]
