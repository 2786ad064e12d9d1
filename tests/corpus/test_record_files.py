"""Reading any JSONL or Parquet corpus, and reaching a (nested) field with errors that name file and line."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus.record_files import field_value, leaf_text, read_records
from schemas.errors import UserInputError


def test_fields_are_reached_by_dots_and_a_dotted_key_is_tried_whole_first():
    record = {"record": {"input persona": "a teacher", "tags": ["x"]}, "a.b": 1, "a": {"b": 2}}
    assert field_value(record, "record.input persona", "f:1") == "a teacher"
    assert field_value(record, "a.b", "f:1") == 1
    with pytest.raises(UserInputError, match="field not found") as caught:
        field_value(record, "record.summary", "corpus.jsonl:7")
    assert "corpus.jsonl:7" in str(caught.value) and "record.summary" in str(caught.value)


def test_a_structured_record_reads_as_the_text_of_its_values():
    assert leaf_text({"name": "Ada", "jobs": ["engineer", {"then": "writer"}], "age": 36, "pet": None}) == (
        "Ada engineer writer 36 "
    )


def test_jsonl_and_parquet_read_alike_and_a_bad_line_is_named(tmp_path):
    rows = [{"id": "a", "text": "one"}, {"id": "b", "text": "two"}]
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text('{"id": "a", "text": "one"}\n\n{"id": "b", "text": "two"}\n')
    parquet = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    assert read_records(jsonl) == read_records(parquet) == rows
    jsonl.write_text('{"id": "a"}\n{"id": \n')
    with pytest.raises(UserInputError, match="not JSON") as caught:
        read_records(jsonl)
    assert f"{jsonl}:2" in str(caught.value)
    with pytest.raises(UserInputError, match="no such file"):
        read_records(tmp_path / "missing.jsonl")
