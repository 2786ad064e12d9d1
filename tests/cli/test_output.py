"""Every command prints JSON through one helper: numpy values, dates and non-string keys included."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np

from cli.output import cell, print_json


def test_print_json_writes_indented_json_a_script_can_read(capsys):
    print_json(
        {"rate": np.float64(0.25), "counts": np.array([1, 2]), 3: "three", "at": datetime(2026, 1, 2, tzinfo=UTC)}
    )
    text = capsys.readouterr().out
    assert json.loads(text) == {"rate": 0.25, "counts": [1, 2], "3": "three", "at": "2026-01-02T00:00:00+00:00"}
    assert text.startswith("{\n  ") and text.endswith("}\n")


def test_cells_show_four_decimals_one_for_large_values_and_n_a_for_missing():
    assert [cell(0.123456), cell(1234.56), cell(None), cell(7)] == ["0.1235", "1234.6", "n/a", "7"]
