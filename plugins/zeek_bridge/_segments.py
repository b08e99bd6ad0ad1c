"""Segment reductions: per-group first/count/sum/max and running maxima over sorted columns.

A *segmentation* is an array of segment start positions ``st`` over rows sorted by segment (every
segment non-empty). These helpers are the vectorized replacement of a per-connection loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Segs", "one_of", "signed32"]


def signed32(v: NDArray[np.int64]) -> NDArray[np.int64]:
    """``v`` modulo 2**32 read as a signed 32-bit number (TCP sequence differences)."""
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def one_of(v: NDArray[np.integer], values: tuple[int, ...]) -> NDArray[np.bool_]:
    """Whether each of ``v`` is one of a few ``values`` (``np.isin`` without its set up)."""
    if v.dtype == np.uint8:
        table = np.zeros(256, np.bool_)
        table[[x for x in values if 0 <= x < 256]] = True
        return table[v]
    out = v == values[0]
    for x in values[1:]:  # a handful of constants
        out |= v == x
    return out


class Segs:
    """Reductions over ``n`` rows grouped into consecutive non-empty segments starting at ``st``."""

    def __init__(self, st: NDArray[np.int64], n: int) -> None:
        self.st = st.astype(np.int64)
        self.n = n
        self.count_rows = np.diff(np.append(self.st, n))
        self.id = np.repeat(np.arange(len(st), dtype=np.int64), self.count_rows)
        self.pos = np.arange(n, dtype=np.int64)

    @property
    def k(self) -> int:
        """Number of segments."""
        return len(self.st)

    def first(self, mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        """Row index of the first row with ``mask`` per segment, else ``n``."""
        if self.n == 0:
            return np.zeros(0, np.int64)
        return np.minimum.reduceat(np.where(mask, self.pos, self.n), self.st)

    def last(self, mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        """Row index of the last row with ``mask`` per segment, else -1."""
        if self.n == 0:
            return np.zeros(0, np.int64)
        return np.maximum.reduceat(np.where(mask, self.pos, -1), self.st)

    def count(self, mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        """Rows with ``mask`` per segment."""
        return self.sum(mask.astype(np.int64))

    def sum(self, values: NDArray[np.int64]) -> NDArray[np.int64]:
        """Sum per segment."""
        if self.n == 0:
            return np.zeros(0, np.int64)
        return np.add.reduceat(values.astype(np.int64), self.st)

    def max(self, values: NDArray[np.int64], fill: int) -> NDArray[np.int64]:
        """Maximum per segment (``values`` already masked with a fill where not wanted)."""
        if self.n == 0:
            return np.zeros(0, np.int64)
        return np.maximum(np.maximum.reduceat(values, self.st), fill)

    def at(self, rows: NDArray[np.int64], column: NDArray, fill: Any) -> NDArray:
        """``column[rows]`` where a row exists (``rows < n``), else ``fill``."""
        ok = (rows >= 0) & (rows < self.n)
        safe = np.where(ok, rows, 0)
        if len(column) == 0:
            return np.full(len(rows), fill)
        return np.where(ok, column[safe], fill)

    def cummax(self, values: NDArray[np.int64], floor: int = 0) -> NDArray[np.int64]:
        """Running maximum within each segment (values clipped below at ``floor``)."""
        if self.n == 0:
            return np.zeros(0, np.int64)
        v = np.maximum(values, floor).astype(np.int64)
        lo, span = int(v.min()), int(v.max()) - int(v.min()) + 1
        if span * (self.k + 1) < 1 << 62:  # segments offset apart: no sort needed
            offset = self.id * span
            return np.maximum.accumulate(offset + (v - lo)) - offset + lo
        uniq, rank = np.unique(v, return_inverse=True)
        span = len(uniq)
        key = self.id * span + rank.reshape(-1)
        return uniq[np.maximum.accumulate(key) - self.id * span]

    def rank(self, mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        """1-based rank of each ``mask`` row among the segment's ``mask`` rows (0 elsewhere)."""
        c = np.cumsum(mask.astype(np.int64))
        before = np.where(self.st > 0, c[np.maximum(self.st - 1, 0)], 0)
        before[self.st == 0] = 0
        return np.where(mask, c - before[self.id], 0)

    def prev_in_group(self, mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        """For each ``mask`` row, the previous ``mask`` row of its segment (else -1)."""
        last = np.maximum.accumulate(np.where(mask, self.pos, -1))
        prev = np.empty(self.n, np.int64)
        if self.n:
            prev[0] = -1
            prev[1:] = last[:-1]
        return np.where(prev >= self.st[self.id], prev, -1)
