"""Flow assembly folds its sort columns into fewer integers: the order must not change."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from netdiffusion import Traffic
from netdiffusion.flows import _sort_keys, flow_keys
from netdiffusion.inputs import expand_captures, read_captures


def _plain_order(t: Traffic) -> np.ndarray:
    """The sort by (file, protocol, lo, hi, extra, time) with every column on its own."""
    keys = flow_keys(t)
    cols = (t.ts_ns, keys.extra, keys.hi, keys.lo, t.proto.astype(np.int64), t.file)
    return np.lexsort(cols)


def _folded_order(t: Traffic) -> np.ndarray:
    keys = flow_keys(t)
    return np.lexsort((t.ts_ns, *_sort_keys(t.file, np.ascontiguousarray(t.proto), keys)[::-1]))


def test_folded_keys_sort_real_traffic_the_same(shared_data: Path) -> None:
    files = expand_captures([shared_data / "ndpi" / "pcap"])[:120]
    t, _ = read_captures(files, keep_payload=False, progress=False)
    assert len(np.unique(t.proto)) == 3  # TCP, UDP and ICMP: all key shapes
    assert np.array_equal(_folded_order(t), _plain_order(t))


def _synthetic(n: int, files: np.ndarray, seed: int) -> Traffic:
    rng = np.random.default_rng(seed)
    t = Traffic.empty(n)
    t.ip[:, 0] = 0x45
    t.ip[:, 9] = rng.choice([1, 6, 17, 47], n)
    t.ip[:, 12:20] = rng.choice([0, 1, 255], (n, 8))  # few, extreme addresses: many ties
    t.l4[:, 0:6] = rng.choice([0, 8, 255], (n, 6))  # ports, ICMP types 0/8/255 and ids
    t.ts_ns[:] = rng.integers(0, 5, n)
    t.file[:] = files
    return t


def test_folded_keys_sort_extremes_the_same() -> None:
    n = 4000
    rng = np.random.default_rng(1)
    few_files = rng.integers(-1, 3, n).astype(np.int32)
    many_files = rng.choice([0, 1, 70_000], n).astype(np.int32)  # too wide to fold: 3 keys
    for files in (few_files, many_files):
        t = _synthetic(n, files, seed=int(files.max()))
        assert len(_sort_keys(t.file, np.ascontiguousarray(t.proto), flow_keys(t))) == (
            2 if files is few_files else 3
        )
        assert np.array_equal(_folded_order(t), _plain_order(t))
