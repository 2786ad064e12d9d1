import pytest
import yaml

from schemas.errors import UserInputError
from taxonomy.loader import load_taxonomy, sampling_order


def test_seed_taxonomy_loads_with_hash_and_order():
    taxonomy = load_taxonomy("seed:core")
    attrs = taxonomy.attributes()
    assert len(taxonomy.categories) >= 10 and len(attrs) >= 30
    assert len(taxonomy.content_hash) == 64
    order = sampling_order(taxonomy)
    assert order.index("demographics.age_band") < order.index("demographics.age")
    assert order.index("work.employment_status") < order.index("work.occupation")


def _write(tmp_path, attributes):
    doc = {"name": "t", "version": "1", "categories": [{"id": "demo", "label": "D", "attributes": attributes}]}
    path = tmp_path / "tax.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


GOOD = {"id": "demo.a", "label": "A", "kind": "categorical", "values": {"x": 0.5, "y": 0.5}}


@pytest.mark.parametrize(
    ("attributes", "needle"),
    [
        ([GOOD, GOOD], "duplicate attribute id"),
        ([{**GOOD, "values": {"x": 0.5, "y": 0.2}}], "weights sum"),
        ([{**GOOD, "values": {}}], "empty value domain"),
        ([{**GOOD, "depends_on": {"attribute": "demo.missing", "table": {}}}], "unknown attribute"),
        ([{**GOOD, "colour": "red"}], "Extra inputs"),
        (
            [
                {**GOOD, "applicable_when": [{"attribute": "demo.b", "op": "==", "value": "x"}]},
                {**GOOD, "id": "demo.b", "applicable_when": [{"attribute": "demo.a", "op": "==", "value": "x"}]},
            ],
            "cycle",
        ),
        ([{"id": "demo.n", "label": "N", "kind": "numeric", "minimum": 5, "maximum": 1}], "minimum <= maximum"),
        ([{**GOOD, "id": "other.a"}], "does not start with its category"),
        ([{**GOOD, "values": {}, "scale": "nope"}], "unknown scale"),
        ([{"id": "demo.t", "label": "T", "kind": "text"}], "text attribute without guidance"),
        (
            [GOOD, {**GOOD, "id": "demo.b", "applicable_when": [{"attribute": "demo.a", "op": "==", "value": "z"}]}],
            "not in demo.a's domain",
        ),
        (
            [GOOD, {**GOOD, "id": "demo.b", "applicable_when": [{"attribute": "demo.a", "op": ">=", "value": 3}]}],
            "use ==, !=, in or not_in",
        ),
        (
            [
                {
                    "id": "demo.n",
                    "label": "N",
                    "kind": "numeric",
                    "minimum": 0,
                    "maximum": 10,
                    "range_by": {"attribute": "demo.a", "ranges": {"x": [0, 5], "y": [5, 20]}},
                },
                GOOD,
            ],
            "is not inside",
        ),
        ([{**GOOD, "provenance": {"source": "mined"}}], "a mined attribute without support"),
        ([{**GOOD, "values": {"x": -0.5, "y": 1.5}}], "negative"),
        ([{**GOOD, "id": "demo.Bad Id"}], "String should match pattern"),
        ([{**GOOD, "kind": "numeric", "minimum": 0, "maximum": 1}], "has no value list"),
        (
            [GOOD, {**GOOD, "id": "demo.b", "applicable_when": [{"attribute": "demo.a", "op": "in", "value": "x"}]}],
            "'in' needs a list of values",
        ),
        (
            [GOOD, {**GOOD, "id": "demo.b", "applicable_when": [{"attribute": "demo.a", "op": "<", "value": "x"}]}],
            "'<' needs a number",
        ),
        (
            [GOOD, {**GOOD, "id": "demo.b", "applicable_when": [{"attribute": "demo.a", "op": "==", "value": ["x"]}]}],
            "use in/not_in for a list",
        ),
        (
            [
                {"id": "demo.n", "label": "N", "kind": "numeric", "minimum": 0, "maximum": 10},
                {**GOOD, "id": "demo.b", "applicable_when": [{"attribute": "demo.n", "op": "==", "value": "ten"}]},
            ],
            "compares numeric demo.n with 'ten'",
        ),
    ],
)
def test_bad_taxonomy_is_rejected_with_a_clear_error(tmp_path, attributes, needle):
    with pytest.raises(UserInputError) as err:
        load_taxonomy(_write(tmp_path, attributes))
    assert needle in str(err.value)
    assert "tax.yaml" in str(err.value)


def test_unknown_seed_lists_shipped_ones():
    with pytest.raises(UserInputError, match="seed:core"):
        load_taxonomy("seed:nope")


def _write_doc(tmp_path, doc):
    path = tmp_path / "tax.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"name": "t", "version": "1", "categories": []}, "is empty"),
        (
            {
                "name": "t",
                "version": "1",
                "categories": [{"id": "demo", "label": "D", "subcategories": [{"id": "elsewhere.sub", "label": "S"}]}],
            },
            "does not start with its parent category",
        ),
        (
            {"name": "t", "version": "1", "categories": [{"id": "demo", "label": "D"}, {"id": "demo", "label": "E"}]},
            "duplicate category id",
        ),
        (
            {
                "name": "t",
                "version": "1",
                "categories": [{"id": "demo", "label": "D", "attributes": [GOOD]}],
                "content_hash": "0" * 64,
            },
            "does not match the content",
        ),
        (
            {
                "name": "t",
                "version": "1",
                "categories": [{"id": "demo", "label": "D", "attributes": [GOOD]}],
                "colour": "red",
            },
            "Extra inputs",
        ),
        ({"name": "t", "categories": [{"id": "demo", "label": "D", "attributes": [GOOD]}]}, "version"),
    ],
)
def test_bad_taxonomy_structure_is_rejected(tmp_path, doc, needle):
    with pytest.raises(UserInputError) as err:
        load_taxonomy(_write_doc(tmp_path, doc))
    assert needle in str(err.value) and "tax.yaml" in str(err.value)


def test_unreadable_files_are_rejected(tmp_path):
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UserInputError, match="not readable YAML"):
        load_taxonomy(str(binary))
    with pytest.raises(UserInputError, match="no such file"):
        load_taxonomy(str(tmp_path / "missing.yaml"))


def test_seed_is_deep_and_grounded():
    from taxonomy.inspect import taxonomy_stats

    stats = taxonomy_stats(load_taxonomy("seed:core"))
    assert stats["roots"] >= 12 and stats["leaves"] >= 400 and stats["share_with_priors"] >= 0.6
    assert "4" in stats["depth_histogram"] and stats["census_cited"] >= 8


def test_seed_priors_agree_with_the_census_preset():
    from taxonomy.presets import load_preset

    taxonomy = load_taxonomy("seed:core")
    attrs = taxonomy.attributes()
    for table in load_preset("us_adults", taxonomy).marginals:
        for position, attr_id in enumerate(table.attributes):
            if attr_id == "demographics.state":
                continue  # the seed draws states within their region (depends_on)
            census: dict[str, float] = {}
            for key, share in table.cells().items():
                census[key[position]] = census.get(key[position], 0.0) + share
            for value, share in census.items():
                assert abs(attrs[attr_id].values[value] - share) < 0.002, (attr_id, value)
            assert attrs[attr_id].provenance.citation


def test_write_then_load_round_trips_with_a_verified_hash(tmp_path):
    from taxonomy.loader import write_taxonomy

    seed = load_taxonomy("seed:core")
    written = write_taxonomy(seed, tmp_path / "copy.yaml")
    again = load_taxonomy(str(tmp_path / "copy.yaml"))
    assert again.content_hash == written.content_hash == seed.content_hash
    assert again.attributes() == seed.attributes()
    text = (tmp_path / "copy.yaml").read_text()
    (tmp_path / "copy.yaml").write_text(text.replace("label: Age band", "label: Age group"))
    with pytest.raises(UserInputError, match="does not match the content"):
        load_taxonomy(str(tmp_path / "copy.yaml"))


def test_diff_counts_added_removed_and_changed(tmp_path):
    from taxonomy.inspect import taxonomy_diff

    old = load_taxonomy(_write(tmp_path, [GOOD, {**GOOD, "id": "demo.b"}]))
    new = load_taxonomy(_write(tmp_path, [{**GOOD, "label": "A2"}, {**GOOD, "id": "demo.c"}]))
    diff = taxonomy_diff(old, new)
    assert diff["added"] == ["demo.c"] and diff["removed"] == ["demo.b"] and diff["changed"] == ["demo.a"]
