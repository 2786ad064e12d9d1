"""Union-find clustering, the removed share, and the stored dedup index a later run reads."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dedup.clusters import UnionFind
from dedup.detect import DedupItems
from dedup.index_store import feature_key, load_features, save_index
from dedup.metrics import removed_share
from schemas.config import DedupConfig


def test_union_find_joins_chains_and_names_each_cluster_by_its_smallest_member():
    groups = UnionFind(["p-5", "p-2", "p-9", "p-1", "p-7"])
    groups.union("p-5", "p-9")
    groups.union("p-9", "p-2")
    groups.union("p-7", "p-7")
    assert groups.find("p-9") == "p-2"
    assert sorted(map(sorted, groups.groups().values())) == [["p-1"], ["p-2", "p-5", "p-9"], ["p-7"]]
    assert set(groups.groups()) == {"p-1", "p-2", "p-7"}


def test_removed_share_counts_every_member_but_the_keeper():
    clusters = pa.table({"persona_id": ["a", "b", "c", "d"], "kept": [True, False, False, True]})
    assert removed_share(clusters) == 0.5
    assert removed_share(clusters.slice(0, 0)) == 0.0


def test_the_index_round_trips_and_a_different_setting_is_not_reused(tmp_path):
    cfg = DedupConfig()
    items = DedupItems(ids=["a", "b"], texts=["one text", "another text"], ranks=[0.0, 1.0])
    items.vectors = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    save_index(tmp_path / "index", items, feature_key(cfg, "static"))
    again = DedupItems(ids=["a", "b"], texts=["one text", "another text"], ranks=[0.0, 1.0])
    loaded = load_features(tmp_path / "index", again, feature_key(cfg, "static"))
    assert np.array_equal(loaded.vectors, items.vectors)
    other = DedupItems(ids=["a", "b"], texts=["one text", "another text"], ranks=[0.0, 1.0])
    assert load_features(tmp_path / "index", other, feature_key(cfg, "another-embedder")).vectors is None
