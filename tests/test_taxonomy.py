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
        ([{**GOOD, "applicable_when": [{"attribute": "demo.b", "op": "==", "value": "x"}]},
          {**GOOD, "id": "demo.b", "applicable_when": [{"attribute": "demo.a", "op": "==", "value": "x"}]}],
         "cycle"),
        ([{"id": "demo.n", "label": "N", "kind": "numeric", "minimum": 5, "maximum": 1}], "minimum <= maximum"),
        ([{**GOOD, "id": "other.a"}], "does not start with its category"),
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
