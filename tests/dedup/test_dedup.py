import subprocess
import sys

import numpy as np
import pytest

from dedup.detect import DedupItems, fact_set, find_duplicates
from dedup.embedders import create_embedder
from dedup.minhash import choose_bands, jaccard, minhash_pairs, signatures
from dedup.normalize import char_shingles, normalize_text, word_shingles
from dedup.semantic import semantic_pairs
from schemas.config import DedupConfig, EmbedderConfig
from tests.helpers.paths import REPO

BASE = (
    "Maria Lopez teaches third grade in a small town outside Tucson and spends her weekends "
    "restoring an old pickup truck with her brother while planning a trip to Oaxaca next spring."
)
OTHER = "Tom Becker drives a delivery van across Ohio, listens to baseball on the radio and coaches little league."
PARAPHRASE = (
    "Maria Lopez is a third-grade teacher in a little town near Tucson; on weekends she fixes up an "
    "old pickup with her brother and plans a spring trip to Oaxaca."
)
ONLY_TEXT = DedupConfig(semantic=False, facts=False)


def items(texts, facts=None, ranks=None):
    ids = [f"p-{i}" for i in range(len(texts))]
    return DedupItems(ids=ids, texts=list(texts), ranks=ranks or [float(i) for i in range(len(texts))], facts=facts)


def by_id(table):
    return {r["persona_id"]: r for r in table.to_pylist()}


def test_normalisation_and_shingles():
    assert normalize_text("Hello,   WORLD!") == normalize_text("hello world")
    assert word_shingles("a b c d", 3) == {"a b c", "b c d"}
    assert char_shingles("abcd", 3) == {"abc", "bcd"}


def test_exact_and_minhash_duplicates_cluster_and_keep_the_best():
    near = BASE.replace("next spring", "next summer")
    assert jaccard(word_shingles(BASE, 3), word_shingles(near, 3)) >= 0.8
    rows = by_id(find_duplicates(items([BASE, BASE.upper(), near, OTHER], ranks=[3, 1, 2, 0]), ONLY_TEXT))
    assert rows["p-1"]["kept"] and rows["p-1"]["duplicate_of"] is None  # best rank in its cluster
    assert rows["p-0"]["duplicate_of"] == "p-1" and rows["p-0"]["layer"] == "exact"
    assert rows["p-2"]["duplicate_of"] == "p-1" and rows["p-2"]["layer"] == "minhash"
    assert rows["p-3"]["kept"] and rows["p-3"]["cluster_id"] == "p-3"


def test_pairs_below_threshold_are_not_merged():
    half = " ".join(BASE.split()[:15]) + " and nothing else is the same about this completely different person at all"
    rows = find_duplicates(items([BASE, half]), ONLY_TEXT).to_pylist()
    assert all(r["kept"] for r in rows)


def test_minhash_verifies_every_candidate_exactly():
    sets = [set("abcdefghij"), set("abcdefghik"), set("abcdefghij")]
    pairs = minhash_pairs(lambda rows: [sets[i] for i in rows], signatures(sets, 128), 128, 0.95, "minhash")
    assert {(p.a, p.b) for p in pairs} == {(0, 2)}  # 0-1 has Jaccard 0.82: candidate at most, never a pair


def test_bulk_signatures_equal_datasketch_minhash_per_document():
    """Stored indexes of earlier runs stay comparable: the bulk signatures are datasketch's values."""
    from datasketch import MinHash

    from dedup.minhash import SCHEME, SEED, TOKENS_PER_BLOCK, hash32

    rng = np.random.default_rng(3)
    sets = [{f"w{v} é" for v in rng.integers(0, 5000, size=rng.integers(0, 300))} for _ in range(400)]
    sets += [set(), {f"t{i}" for i in range(TOKENS_PER_BLOCK + 10)}, {"x"}]  # empty, over one block, tiny
    for num_perm in (128, 64):
        sketch = MinHash(num_perm=num_perm, seed=SEED, scheme=SCHEME, hashfunc=hash32)
        expected = []
        for tokens in sets:
            sketch.clear()
            sketch.update_batch([t.encode() for t in tokens] or [b""])
            expected.append(sketch.hashvalues.copy())
        got = signatures(sets, num_perm)
        assert got.dtype == np.uint32 and got.shape == (len(sets), num_perm)
        assert np.array_equal(got, np.array(expected))


def test_the_default_permutations_are_shipped_and_read_without_datasketch():
    """A worker computing signatures for the default config does not import datasketch (and scipy)."""
    script = (
        "import sys\n"
        "from dedup.minhash import permutations, shipped_permutations\n"
        "from schemas.config import DedupConfig\n"
        "num_perm = DedupConfig().num_perm\n"
        "assert shipped_permutations(num_perm).is_file()\n"
        "a, b = permutations(num_perm)\n"
        "assert a.shape == b.shape == (num_perm,) and a.dtype == b.dtype == 'uint32'\n"
        "assert 'datasketch' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_semantic_layer_finds_paraphrases_with_the_static_embedder():
    embedder = create_embedder(EmbedderConfig())
    cfg = DedupConfig(exact=False, facts=False, minhash_threshold=0.99, cosine_threshold=0.85)
    rows = by_id(find_duplicates(items([BASE, OTHER, PARAPHRASE]), cfg, embedder))
    assert rows["p-2"]["duplicate_of"] == "p-0" and rows["p-2"]["layer"] == "semantic"
    assert rows["p-1"]["kept"]


def test_semantic_pairs_on_planted_vectors():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 16)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    twin = base[7] + 0.01 * rng.normal(size=16).astype(np.float32)
    vectors = np.vstack([base, twin / np.linalg.norm(twin)])
    pairs = semantic_pairs(vectors, 0.95, 5)
    assert [(p.a, p.b) for p in pairs] == [(7, 50)]


def test_facts_layer_catches_identical_skeletons_with_different_prose():
    facts = [
        fact_set({"age": "40", "job": "nurse", "city": "Tucson"}),
        fact_set({"age": "40", "job": "nurse", "city": "Tucson"}),
        fact_set({"age": "22", "job": "cook", "city": "Reno"}),
    ]
    cfg = DedupConfig(semantic=False, facts_threshold=0.99)
    rows = by_id(find_duplicates(items([BASE, OTHER, PARAPHRASE], facts=facts), cfg))
    assert rows["p-1"]["duplicate_of"] == "p-0" and rows["p-1"]["layer"] == "facts"
    assert rows["p-2"]["kept"]


def test_incremental_dedup_against_an_existing_corpus():
    existing = DedupItems(ids=["old:p-9"], texts=[BASE], ranks=[0.0])
    rows = by_id(find_duplicates(items([BASE.lower(), OTHER]), ONLY_TEXT, existing=existing))
    assert set(rows) == {"p-0", "p-1"}  # existing rows are not reported
    assert rows["p-0"]["duplicate_of"] == "old:p-9" and not rows["p-0"]["kept"]
    assert rows["p-1"]["kept"]


def test_band_choice_is_steep_around_the_threshold():
    bands, rows = choose_bands(0.8, 128)
    assert bands * rows <= 128

    def catch(s):
        return 1 - (1 - s**rows) ** bands

    assert catch(0.8) > 0.85 and catch(0.9) > 0.99 and catch(0.5) < 0.05


def test_personahub_preset():
    cfg = DedupConfig(preset="personahub")
    assert (cfg.shingles.unit, cfg.shingles.size, cfg.num_perm, cfg.minhash_threshold, cfg.cosine_threshold) == (
        "word",
        1,
        128,
        0.9,
        0.9,
    )
    assert DedupConfig(preset="personahub", minhash_threshold=0.8).minhash_threshold == 0.8


@pytest.mark.parametrize("unit", ["word", "char"])
def test_shingle_units_are_configurable(unit):
    cfg = DedupConfig(semantic=False, facts=False, shingles={"unit": unit, "size": 5 if unit == "char" else 2})
    rows = find_duplicates(items([BASE, BASE.replace("Oaxaca", "Oaxaca, Mexico")]), cfg).to_pylist()
    assert sum(not r["kept"] for r in rows) == 1


def test_ray_data_signatures_and_vectors_match_the_single_process_ones(local_ray):
    from dedup.parallel import signatures_with_ray, static_vectors_with_ray
    from dedup.signatures import signatures_of_texts
    from schemas.config import ShingleConfig

    texts = [f"{BASE} variant {i}" for i in range(300)] + [OTHER]
    parallel = signatures_with_ray(texts, ShingleConfig(), 64, chunk=100)
    assert np.array_equal(parallel, signatures_of_texts(texts, ShingleConfig(), 64))
    vectors = static_vectors_with_ray(texts, None, workers=2, chunk=100)
    assert np.allclose(vectors, create_embedder(EmbedderConfig()).embed(texts), atol=1e-6)


@pytest.mark.gpu
def test_faiss_gpu_index_finds_the_pairs_exact_search_finds():
    import faiss

    if not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() == 0:
        pytest.skip(
            "this FAISS build has no GPU support: use faiss-gpu-cu12 in place of faiss-cpu (README, Deduplication)"
        )
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(2000, 64)).astype(np.float32)
    vectors[1500:1510] = vectors[:10] + 0.01 * rng.normal(size=(10, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = vectors @ vectors.T
    expected = {(i, j) for i in range(2000) for j in range(i + 1, 2000) if sims[i, j] >= 0.95}
    assert {(p.a, p.b) for p in semantic_pairs(vectors, 0.95, 10)} == expected


def test_shard_features_give_the_clusters_of_computing_everything_at_once(tmp_path):
    """Features computed per settled shard (as a build does, in parallel tasks), left on disk and read
    best first, cluster exactly like the same personas deduplicated in one pass in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dedup.feature_shards import FeatureShards
    from dedup.shard_features import shard_features

    cfg = DedupConfig(embedder=EmbedderConfig(kind="static"))
    near = BASE.replace("next spring", "next summer")
    texts = [BASE, OTHER, BASE, near, PARAPHRASE, OTHER + " He also bakes bread."]
    facts = [[("age", str(30 + i % 3)), ("job", "teacher" if i % 2 else "nurse")] for i in range(len(texts))]
    settled = pa.table(
        {
            "persona_id": [f"p-{i}" for i in range(len(texts))],
            "slot": list(range(len(texts))),
            "warnings": [1, 0, 0, 2, 0, 0],
            "rounds": [1, 1, 2, 1, 1, 1],
            "accepted": [True, True, True, True, True, False],
            "narrative": texts,
            "attributes": [[{"key": k, "value": v} for k, v in f] for f in facts],
        }
    )
    paths = [tmp_path / "0.parquet", tmp_path / "1.parquet"]
    for path, part in zip(paths, (settled.slice(0, 3), settled.slice(3)), strict=True):
        pq.write_table(shard_features(part, cfg), path)
    shards = FeatureShards(paths)
    assembled = shards.items(shards.ordered())
    assert assembled.ids == ["p-1", "p-4", "p-2", "p-0", "p-3"]  # fewest warnings, rounds, then slot; p-5 refused

    order = [1, 4, 2, 0, 3]
    direct = DedupItems(
        ids=[f"p-{i}" for i in order],
        texts=[texts[i] for i in order],
        ranks=[float(r) for r in range(len(order))],
        facts=[fact_set(facts[i]) for i in order],
    )
    embedder = create_embedder(cfg.embedder)
    assert by_id(find_duplicates(assembled, cfg, embedder)) == by_id(find_duplicates(direct, cfg, embedder))
    clusters = by_id(find_duplicates(assembled, cfg, embedder))
    assert not clusters["p-0"]["kept"] and clusters["p-0"]["duplicate_of"] in {"p-2", "p-4"}  # p-2 is its copy
