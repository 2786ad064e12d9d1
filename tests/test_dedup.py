import pyarrow as pa

from dedup.near_duplicates import choose_bands, find_duplicates, jaccard
from dedup.normalize import normalize_text, word_shingles
from schemas.config import DedupConfig

BASE = ("Maria Lopez teaches third grade in a small town outside Tucson and spends her weekends "
        "restoring an old pickup truck with her brother while planning a trip to Oaxaca next spring.")


def test_normalisation_ignores_case_and_punctuation():
    assert normalize_text("Hello,   WORLD!") == normalize_text("hello world")


def test_exact_and_near_duplicates_cluster_and_keep_the_best():
    near = BASE.replace("next spring", "next summer")
    other = "Tom Becker drives a delivery van across Ohio, listens to baseball on the radio and coaches little league."
    ids = ["p-a", "p-b", "p-c", "p-d"]
    table = pa.table({"persona_id": ids, "text": [BASE, BASE.upper(), near, other], "rank": [3, 1, 2, 0]})
    cfg = DedupConfig(minhash_threshold=0.8)
    assert jaccard(word_shingles(BASE, 3), word_shingles(near, 3)) >= 0.8
    rows = {r["persona_id"]: r for r in find_duplicates(table, cfg).to_pylist()}
    assert rows["p-b"]["duplicate_of"] is None  # best rank in its cluster
    assert rows["p-a"]["duplicate_of"] == "p-b" and rows["p-a"]["method"] == "exact"
    assert rows["p-c"]["duplicate_of"] == "p-b" and rows["p-c"]["method"] == "minhash"
    assert rows["p-d"]["duplicate_of"] is None and rows["p-d"]["cluster_id"] == "p-d"


def test_pairs_below_threshold_are_not_merged():
    half = " ".join(BASE.split()[:15]) + " and nothing else is the same about this completely different person at all"
    table = pa.table({"persona_id": ["p-1", "p-2"], "text": [BASE, half], "rank": [0, 1]})
    rows = find_duplicates(table, DedupConfig(minhash_threshold=0.8)).to_pylist()
    assert all(r["duplicate_of"] is None for r in rows)


def test_band_choice_matches_the_s_curve_optimum():
    bands, rows = choose_bands(0.8, 128)
    assert bands * rows <= 128
    def catch(s):
        return 1 - (1 - s**rows) ** bands

    # Steep around the threshold: most pairs at 0.8 become candidates, few at 0.5.
    assert catch(0.8) > 0.85 and catch(0.9) > 0.99 and catch(0.5) < 0.05
