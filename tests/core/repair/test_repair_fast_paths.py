"""Shortcuts in the real-capture repair give what the whole-traffic passes give."""

from __future__ import annotations

import numpy as np

from netdiffusion import Traffic
from netdiffusion.emit._synth import finish, random_traffic
from netdiffusion.repair._engine import _fill_payloads, _fill_rows, _splice_rows
from netdiffusion.repair._options import parse_tcp_options


def _snapped(seed: int) -> Traffic:
    """Finished traffic in which some packets hold only the first bytes of their payload."""
    t = finish(random_traffic(2000, seed=seed))
    rng = np.random.default_rng(seed)
    held = t.held_payload_len.copy()
    cut = rng.random(t.n_packets) < 0.1
    held[cut] = rng.integers(0, np.maximum(held[cut], 1))
    keep = np.repeat(t.payload_off[:-1], held) + (
        np.arange(int(held.sum())) - np.repeat(np.cumsum(held) - held, held)
    )
    off = np.concatenate([[0], np.cumsum(held)]).astype(np.int64)
    return t.with_payload(t.payload[keep], off)


def test_fill_rows_equals_filling_everything() -> None:
    for seed in (1, 2):
        t = _snapped(seed)
        held = t.held_payload_len
        missing = int((held < t.payload_len).sum())
        assert missing > 0
        got, name = _fill_rows(t, held, missing)
        want, want_name = _fill_payloads(t, missing)
        assert name == want_name
        assert np.array_equal(got.payload_off, want.payload_off)
        assert np.array_equal(got.payload[: got.payload_off[-1]], want.payload)


def test_splice_rows_matches_rebuilding() -> None:
    rng = np.random.default_rng(3)
    lens = rng.integers(0, 50, 300)
    off = np.concatenate([[4], 4 + np.cumsum(lens)]).astype(np.int64)
    buf = rng.integers(0, 256, int(off[-1]) + 3, dtype=np.uint8)
    rows = np.sort(rng.choice(300, 40, replace=False))
    grow = lens[rows] + rng.integers(0, 30, 40)
    sub_off = np.concatenate([[0], np.cumsum(grow)]).astype(np.int64)
    sub_buf = rng.integers(0, 256, int(sub_off[-1]), dtype=np.uint8)
    out, new_off = _splice_rows(buf, off, rows, sub_buf, sub_off)
    parts = [buf[off[i] : off[i + 1]] for i in range(300)]
    for k, r in enumerate(rows):
        parts[r] = sub_buf[sub_off[k] : sub_off[k + 1]]
    assert np.array_equal(np.diff(new_off), [len(p) for p in parts])
    assert out.tobytes() == b"".join(p.tobytes() for p in parts)
    out, new_off = _splice_rows(buf, off, rows[:0], sub_buf[:0], sub_off[:1])
    assert out.tobytes() == buf[off[0] : off[-1]].tobytes()


def test_tcp_options_subsets_and_canonical_rows() -> None:
    rng = np.random.default_rng(8)
    n = 3000
    l4 = rng.integers(0, 256, (n, 60), dtype=np.uint8)
    hlen = rng.integers(5, 16, n) * 4
    canon = rng.random(n) < 0.4  # NOP NOP timestamps, a 32-byte header
    l4[canon, 20:24] = (1, 1, 8, 10)
    hlen[canon] = 32
    syn = (rng.random(n) < 0.1) & ~canon  # MSS, SACK-permitted, timestamps, NOP, window scale
    l4[syn, 20:40] = (2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7)
    hlen[syn] = 40
    full = parse_tcp_options(l4, hlen)
    assert full.has_ts[canon].all() and (full.bad_at[canon] == -1).all()
    be = l4[canon, 24:32].astype(np.int64)
    assert np.array_equal(
        full.tsval[canon], (be[:, 0] << 24) | (be[:, 1] << 16) | (be[:, 2] << 8) | be[:, 3]
    )
    assert np.array_equal(
        full.tsecr[canon], (be[:, 4] << 24) | (be[:, 5] << 16) | (be[:, 6] << 8) | be[:, 7]
    )
    assert full.has_mss[syn].all() and (full.ws[syn] == 7).all()
    assert (full.bad_at >= 0).any()
    # each row on its own (no batch shortcut) gives the same values
    for i in rng.choice(n, 40, replace=False):
        one = parse_tcp_options(l4[i : i + 1], hlen[i : i + 1])
        for f in full.__dataclass_fields__:
            assert getattr(one, f)[0] == getattr(full, f)[i], (f, i)
    only = rng.random(n) < 0.5
    part = parse_tcp_options(l4, hlen, only=only)
    bad_only = parse_tcp_options(l4, hlen, values=False)
    assert np.array_equal(bad_only.bad_at, full.bad_at)
    for f in full.__dataclass_fields__:
        a, b = getattr(part, f), getattr(full, f)
        assert np.array_equal(a[only], b[only]), f
        if f != "bad_at":
            assert not a[~only].any(), f
    assert (part.bad_at[~only] == -1).all()
