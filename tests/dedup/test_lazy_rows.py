"""Texts and fact sets of stored features stay in Arrow and become Python objects row by row."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dedup.lazy_rows import ArrowRows, ChainedRows, as_list, concat_rows


def test_arrow_rows_convert_each_row_when_read():
    column = pa.chunked_array([[["a", "b"], ["c"]], [[], ["d", "d"]]])
    rows = ArrowRows(column, set)
    assert len(rows) == 4
    assert rows[0] == {"a", "b"} and rows[3] == {"d"} and rows[-1] == {"d"}
    assert rows[1:3] == [{"c"}, set()]
    assert list(rows) == [{"a", "b"}, {"c"}, set(), {"d"}]


def test_concatenation_stays_lazy_and_indexes_across_both_parts():
    lazy = ArrowRows(pa.array(["x", "y"]), str)
    assert concat_rows(["a"], ["b"]) == ["a", "b"]  # two lists: one list
    chained = concat_rows(["a", "b", "c"], lazy)
    assert isinstance(chained, ChainedRows)
    assert [chained[i] for i in range(len(chained))] == ["a", "b", "c", "x", "y"]
    assert chained[-1] == "y" and chained[2:4] == ["c", "x"]
    assert as_list(concat_rows(chained, ["z"])) == ["a", "b", "c", "x", "y", "z"]
    with pytest.raises(IndexError):
        chained[5]
