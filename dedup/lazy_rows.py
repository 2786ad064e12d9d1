"""Rows made into Python objects (or numpy blocks) only when read, and the two ways dedup reads them.

Deduplicating a corpus reads the texts and fact sets of candidate pairs only (to verify them
exactly), and every signature and vector once per pass, block by block. Holding a million personas'
texts, fact sets, signatures and vectors at once costs several gigabytes, so a column may be lazy:
`blocks(rows)` passes over it (in whatever order its storage gives, each block with its row
positions) and `rows_at(rows, positions)` reads just the rows asked for. Plain lists and numpy
arrays work with both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar, overload

import numpy as np

T = TypeVar("T")

BLOCK_ROWS = 65_536  # rows per block of an in-memory column


def blocks(rows: Sequence[Any] | np.ndarray, start: int = 0) -> Iterator[tuple[np.ndarray, Any]]:
    """(positions, values) blocks covering every row from position `start` on once: a list or array
    in slices, a lazy column in its storage's order (values: a list, or a 2-D array for a matrix
    column). Storage that holds no row from `start` on is not read."""
    if isinstance(rows, LazyRows):
        yield from rows.blocks(start)
        return
    for first in range(start, len(rows), BLOCK_ROWS):
        stop = min(first + BLOCK_ROWS, len(rows))
        yield np.arange(first, stop), rows[first:stop]


def rows_at(rows: Sequence[Any] | np.ndarray, positions: np.ndarray) -> Any:
    """The rows at `positions`, in that order: a 2-D array for a matrix column, else a list."""
    if isinstance(rows, LazyRows):
        return rows.rows_at(positions)
    if isinstance(rows, np.ndarray):
        return rows[positions]
    return [rows[int(i)] for i in positions]


class LazyRows(Sequence[T]):
    """A read-only sequence whose rows are made on demand: subclasses give one row and a block of rows."""

    def _row(self, index: int) -> T:
        raise NotImplementedError

    def _block(self, rows: range) -> list[T]:
        # Through rows_at, so a column stored in shards reads each shard once per block, not per row.
        return list(self.rows_at(np.asarray(rows, dtype=np.int64)))

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return self._block(range(len(self))[index])
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._row(index)

    def __iter__(self) -> Iterator[T]:
        for start in range(0, len(self), 4096):  # made in blocks, not all at once
            yield from self._block(range(start, min(start + 4096, len(self))))

    def blocks(self, start: int = 0) -> Iterator[tuple[np.ndarray, Any]]:
        for first in range(start, len(self), BLOCK_ROWS):
            stop = min(first + BLOCK_ROWS, len(self))
            yield np.arange(first, stop), self._block(range(first, stop))

    def rows_at(self, positions: np.ndarray) -> Any:
        return [self._row(int(i)) for i in positions]


class ChainedRows(LazyRows[T]):
    """`first` then `second`, without copying either (lists, arrays or lazy columns)."""

    def __init__(self, first: Sequence[T] | np.ndarray, second: Sequence[T] | np.ndarray) -> None:
        self.first, self.second = first, second

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    def _row(self, index: int) -> T:
        split = len(self.first)
        return self.first[index] if index < split else self.second[index - split]

    def __iter__(self) -> Iterator[T]:
        yield from self.first
        yield from self.second

    def blocks(self, start: int = 0) -> Iterator[tuple[np.ndarray, Any]]:
        split = len(self.first)
        if start < split:
            yield from blocks(self.first, start)
        for positions, values in blocks(self.second, max(0, start - split)):
            yield positions + split, values

    def rows_at(self, positions: np.ndarray) -> Any:
        positions = np.asarray(positions, dtype=np.int64)
        split = len(self.first)
        in_first = positions < split
        first = rows_at(self.first, positions[in_first])
        second = rows_at(self.second, positions[~in_first] - split)
        if isinstance(first, np.ndarray) and isinstance(second, np.ndarray):
            out = np.empty((len(positions), *first.shape[1:]), dtype=first.dtype)
            out[in_first], out[~in_first] = first, second
            return out
        merged: list[Any] = [None] * len(positions)
        for slot, value in zip(np.flatnonzero(in_first), first, strict=True):
            merged[slot] = value
        for slot, value in zip(np.flatnonzero(~in_first), second, strict=True):
            merged[slot] = value
        return merged


def concat_rows(first: Sequence[T], second: Sequence[T]) -> Sequence[T]:
    """Two lists as one list; anything lazy chained, so it stays lazy."""
    if isinstance(first, list) and isinstance(second, list):
        return first + second
    return ChainedRows(first, second)


def as_list(rows: Sequence[T]) -> list[T]:
    """Every row as a Python object: for the code that computes missing features over all rows."""
    return rows if isinstance(rows, list) else list(rows)
