"""Shard tables built from dict rows."""

from __future__ import annotations

import pyarrow as pa

from schemas.tables import SETTLED, VERDICTS, rows_table


def test_rows_table_equals_from_pylist_with_nested_columns_nulls_and_missing_keys():
    settled = [
        {
            "persona_id": "p-1",
            "slot": 1,
            "stratum": "a|b",
            "attributes": [("demographics.age", "41"), ("demographics.sex", "female")],
            "name": "Ana Ruiz",
            "narrative": "Ana Ruiz, 41, ...",
            "accepted": True,
            "rounds": 1,
            "warnings": 0,
        },
        {"persona_id": "p-2", "slot": 2, "stratum": "a|c", "attributes": [], "accepted": False, "reason": "schema"},
    ]
    assert rows_table(settled, SETTLED).equals(pa.Table.from_pylist(settled, schema=SETTLED))
    verdicts = [
        {"persona_id": "p-1", "round": 0, "check": "schema", "severity": "error", "passed": True, "message": ""}
    ] * 3
    table = rows_table(verdicts, VERDICTS)
    assert table.schema == VERDICTS and table.num_rows == 3
    assert rows_table([], VERDICTS).equals(VERDICTS.empty_table())
