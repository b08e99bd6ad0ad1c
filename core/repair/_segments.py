"""Segment (per-flow) operations over packets grouped by flow, and small byte-field helpers."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

I64 = NDArray[np.int64]
Mask = NDArray[np.bool_]


class Segments:
    """Contiguous runs of equal ``flow`` values (the packets must be grouped by flow)."""

    def __init__(self, flow: NDArray[np.integer]) -> None:
        n = len(flow)
        self.n = n
        start = np.ones(n, np.bool_)
        if n:
            start[1:] = flow[1:] != flow[:-1]
        self.starts: I64 = np.flatnonzero(start)
        self.count = len(self.starts)
        self.seg: I64 = np.cumsum(start, dtype=np.int64) - 1
        self.ends: I64 = np.append(self.starts[1:], n).astype(np.int64)
        self.length: I64 = self.ends - self.starts
        self.index: I64 = np.arange(n, dtype=np.int64)
        self.first: I64 = self.starts[self.seg] if n else np.zeros(0, np.int64)
        self.pos: I64 = self.index - self.first
        self.is_last: Mask = self.pos == self.length[self.seg] - 1

    def excl_cumsum(self, x: NDArray[np.integer]) -> I64:
        """Sum of ``x`` over the earlier packets of the same segment."""
        x = np.asarray(x, dtype=np.int64)
        ex = np.cumsum(x) - x
        return ex - ex[self.first]

    def cummin(self, x: NDArray[np.integer], *, reverse: bool = False) -> I64:
        """Minimum of ``x`` over the packets of the same segment up to each packet (from each
        packet to the segment's end with ``reverse``)."""
        x = np.asarray(x, dtype=np.int64)
        if not self.n:
            return x.copy()
        lo = int(x.min())
        span = int(x.max()) - lo + 1  # shift each segment below the ones scanned before it
        step = -span if not reverse else span
        shifted = (x - lo) + self.seg * step
        if reverse:
            return np.minimum.accumulate(shifted[::-1])[::-1] - self.seg * step + lo
        return np.minimum.accumulate(shifted) - self.seg * step + lo

    def first_where(self, mask: Mask) -> I64:
        """Per segment, index of the first packet where ``mask`` holds, else -1."""
        if self.n == 0:
            return np.zeros(0, np.int64)
        idx = np.where(mask, self.index, self.n)
        m = np.minimum.reduceat(idx, self.starts)
        return np.where(m < self.n, m, -1)

    def last_where(self, mask: Mask) -> I64:
        """Per segment, index of the last packet where ``mask`` holds, else -1."""
        if self.n == 0:
            return np.zeros(0, np.int64)
        idx = np.where(mask, self.index, -1)
        return np.maximum.reduceat(idx, self.starts)

    def last_before(self, mask: Mask) -> I64:
        """Per packet, the last earlier packet of its segment where ``mask`` holds, or -1."""
        if self.n == 0:
            return np.zeros(0, np.int64)
        acc = np.maximum.accumulate(np.where(mask, self.index, -1))
        prev = np.empty(self.n, np.int64)
        prev[0] = -1
        prev[1:] = acc[:-1]
        return np.where(prev >= self.first, prev, -1)

    def seg_sum(self, x: NDArray[np.integer]) -> I64:
        """Per segment sum."""
        if self.n == 0:
            return np.zeros(0, np.int64)
        return np.add.reduceat(np.asarray(x, dtype=np.int64), self.starts)

    def seg_max(self, x: NDArray[np.integer]) -> I64:
        """Per segment maximum."""
        if self.n == 0:
            return np.zeros(0, np.int64)
        return np.maximum.reduceat(np.asarray(x, dtype=np.int64), self.starts)


def group_mode(key: I64, value: NDArray[np.integer], nkeys: int, default: int = -1) -> I64:
    """Most frequent ``value`` per ``key`` in ``[0, nkeys)`` (ties: the smallest value).

    ``value`` must lie in ``[0, 2**32)``. Keys without any row get ``default``.
    """
    out = np.full(nkeys, default, np.int64)
    if len(key) == 0:
        return out
    comb = np.sort((np.asarray(key, np.int64) << 32) | np.asarray(value, np.int64))
    brk = np.ones(len(comb), np.bool_)
    brk[1:] = comb[1:] != comb[:-1]
    ustart = np.flatnonzero(brk)
    counts = np.diff(np.append(ustart, len(comb)))
    ukey = comb[ustart] >> 32
    uval = comb[ustart] & 0xFFFFFFFF
    # runs are sorted by (key, value): the first run of each key reaching its maximum count
    kstart = np.ones(len(ukey), np.bool_)
    kstart[1:] = ukey[1:] != ukey[:-1]
    kidx = np.flatnonzero(kstart)
    best = np.maximum.reduceat(counts, kidx)
    run_key = np.cumsum(kstart) - 1
    hit = counts == best[run_key]
    first_hit = np.minimum.reduceat(np.where(hit, np.arange(len(ukey)), len(ukey)), kidx)
    out[ukey[kidx]] = uval[first_hit]
    return out


def get_be(a: NDArray[np.uint8], col: int, nbytes: int) -> I64:
    """Big-endian unsigned field of ``nbytes`` at column ``col`` of every row."""
    v = np.zeros(len(a), np.int64)
    for k in range(nbytes):
        v = (v << 8) | a[:, col + k]
    return v


def set_be(a: NDArray[np.uint8], rows: I64 | Mask, col: int, nbytes: int, values: I64) -> None:
    """Write big-endian ``values`` (one per selected row) at column ``col`` of rows ``rows``."""
    values = np.asarray(values, np.int64)
    for k in range(nbytes):
        a[rows, col + k] = (values >> (8 * (nbytes - 1 - k))) & 0xFF


def mix(seed: int, *parts: NDArray[np.integer]) -> NDArray[np.uint64]:
    """Deterministic 64-bit hash of ``seed`` and integer arrays (splitmix64 finaliser)."""
    with np.errstate(over="ignore"):
        h = np.full(len(parts[0]), np.uint64(seed & 0xFFFFFFFFFFFFFFFF), np.uint64)
        for p in parts:
            h = h ^ (np.asarray(p).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15))
            h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            h = h ^ (h >> np.uint64(31))
    return h
