"""Lazy rows: chained without copying, read by block and by position like lists and arrays."""

from __future__ import annotations

import numpy as np
import pytest

from dedup.lazy_rows import ChainedRows, as_list, blocks, concat_rows, rows_at


def test_concatenation_stays_lazy_and_indexes_across_both_parts():
    lazy = ChainedRows(["x"], ["y"])
    assert concat_rows(["a"], ["b"]) == ["a", "b"]  # two lists: one list
    chained = concat_rows(["a", "b", "c"], lazy)
    assert isinstance(chained, ChainedRows)
    assert [chained[i] for i in range(len(chained))] == ["a", "b", "c", "x", "y"]
    assert chained[-1] == "y" and chained[2:4] == ["c", "x"]
    assert as_list(concat_rows(chained, ["z"])) == ["a", "b", "c", "x", "y", "z"]
    assert rows_at(chained, np.array([4, 0, 3])) == ["y", "a", "x"]
    with pytest.raises(IndexError):
        chained[5]


def test_lists_and_arrays_read_by_block_and_position(monkeypatch):
    monkeypatch.setattr("dedup.lazy_rows.BLOCK_ROWS", 4)
    matrix = np.arange(20).reshape(10, 2)
    seen = [(positions.tolist(), block.tolist()) for positions, block in blocks(matrix)]
    assert [len(p) for p, _ in seen] == [4, 4, 2] and seen[2] == ([8, 9], [[16, 17], [18, 19]])
    assert rows_at(matrix, np.array([9, 1])).tolist() == [[18, 19], [2, 3]]
    assert rows_at(list("abcdef"), np.array([5, 0])) == ["f", "a"]
    chained = ChainedRows(matrix[:3], matrix[3:])
    assert np.array_equal(rows_at(chained, np.array([9, 0, 3])), matrix[[9, 0, 3]])
    assert sorted(p for positions, _ in blocks(chained) for p in positions.tolist()) == list(range(10))


def test_blocks_from_a_position_on_read_only_what_holds_those_rows(monkeypatch):
    monkeypatch.setattr("dedup.lazy_rows.BLOCK_ROWS", 4)
    matrix = np.arange(20).reshape(10, 2)
    seen = [(positions.tolist(), block.tolist()) for positions, block in blocks(matrix, 7)]
    assert seen == [([7, 8, 9], [[14, 15], [16, 17], [18, 19]])]

    first_reads: list[int] = []
    chained = ChainedRows(ChainedRows(matrix[:2], matrix[2:6]), matrix[6:])
    original = ChainedRows.blocks

    def counting(self, start=0):
        if self is chained.first:
            first_reads.append(start)
        yield from original(self, start)

    monkeypatch.setattr(ChainedRows, "blocks", counting)
    tail = [p for positions, _ in blocks(chained, 6) for p in positions.tolist()]
    assert tail == [6, 7, 8, 9] and first_reads == []  # the first part holds no row from 6 on: not read
    middle = {
        p: v for positions, block in blocks(chained, 3) for p, v in zip(positions.tolist(), block.tolist(), strict=True)
    }
    assert middle == {p: matrix[p].tolist() for p in range(3, 10)} and first_reads == [3]
