"""Row values of an Arrow column made into Python objects only when read.

Deduplicating a corpus reads the texts and fact sets of candidate pairs only (to verify them
exactly); every other feature is a hash, a signature or a vector. Holding the whole corpus's texts
and fact sets as Python objects cost more memory than everything else (a million personas carry
tens of millions of facts), so they stay in Arrow and are converted one row at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, overload

import numpy as np
import pyarrow as pa

T = TypeVar("T")


class LazyRows(Sequence[T]):
    """A read-only sequence whose rows are made on demand: subclasses give one row and a block of rows."""

    def _row(self, index: int) -> T:
        raise NotImplementedError

    def _block(self, rows: range) -> list[T]:
        return [self._row(i) for i in rows]

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


class ArrowRows(LazyRows[T]):
    """An Arrow column; `convert` turns each row's Python value into T.

    `order` (row positions) presents the column permuted without copying it: row i is column[order[i]].
    """

    def __init__(
        self, column: pa.Array | pa.ChunkedArray, convert: Callable[[Any], T], order: np.ndarray | None = None
    ) -> None:
        self.column = column
        self.convert = convert
        self.order = order

    def __len__(self) -> int:
        return len(self.column) if self.order is None else len(self.order)

    def _row(self, index: int) -> T:
        position = int(self.order[index]) if self.order is not None else index
        return self.convert(self.column[position].as_py())

    def _block(self, rows: range) -> list[T]:
        if self.order is None and rows.step == 1:
            values = self.column[rows.start : rows.stop].to_pylist()
        else:
            positions = np.asarray(rows) if self.order is None else self.order[rows.start : rows.stop : rows.step]
            values = self.column.take(pa.array(positions)).to_pylist()
        return [self.convert(value) for value in values]


class ChainedRows(LazyRows[T]):
    """`first` then `second`, without copying either."""

    def __init__(self, first: Sequence[T], second: Sequence[T]) -> None:
        self.first, self.second = first, second

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    def _row(self, index: int) -> T:
        split = len(self.first)
        return self.first[index] if index < split else self.second[index - split]

    def __iter__(self) -> Iterator[T]:
        yield from self.first
        yield from self.second


def concat_rows(first: Sequence[T], second: Sequence[T]) -> Sequence[T]:
    """Two lists as one list; anything lazy chained, so it stays lazy."""
    if isinstance(first, list) and isinstance(second, list):
        return first + second
    return ChainedRows(first, second)


def as_list(rows: Sequence[T]) -> list[T]:
    """Every row as a Python object: for the code that computes missing features over all rows."""
    return rows if isinstance(rows, list) else list(rows)
