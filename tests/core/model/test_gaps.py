"""Long flows' gaps calibrated to the training quantiles, on real captures."""

from __future__ import annotations

import numpy as np
import pytest

from netdiffusion.encoding import encode_flows
from netdiffusion.flows import cap_flows
from netdiffusion.model.gaps import QUANTILES, calibrate_gaps, gap_quantiles


@pytest.fixture(scope="module")
def real(tiny_traffic):
    return cap_flows(tiny_traffic, 16)[0]


def _entry(t):
    return gap_quantiles(encode_flows(t, max_packets=16))


def _gaps(t):
    order = np.lexsort((t.ts_ns, t.flow))
    flow, ts = t.flow[order], t.ts_ns[order]
    same = np.r_[False, flow[1:] == flow[:-1]]
    length = np.bincount(t.flow, minlength=t.n_flows)[flow]
    return flow, np.where(same, np.r_[0, np.diff(ts)], -1), length


def test_quantiles_per_class_and_band(real) -> None:
    entry = _entry(real)
    assert entry["edges"] == [9, 16] and set(entry["quantiles"]) <= set(real.classes)
    flow, gap, length = _gaps(real)
    label = real.flow_label[flow]
    for name, rows in entry["quantiles"].items():
        assert len(rows) == 2
        for b, (lo, hi) in enumerate(((9, 15), (16, 16))):
            sel = (gap >= 0) & (length >= lo) & (length <= hi) & (label == real.classes.index(name))
            if rows[b] is None:
                assert sel.sum() < 20
                continue
            q = np.asarray(rows[b])
            assert len(q) == QUANTILES and (np.diff(q) >= 0).all()
            want = np.log1p(gap[sel] / 1e3)
            assert q[0] == pytest.approx(want.min(), abs=1e-3)
            assert q[-1] == pytest.approx(want.max(), abs=1e-3)
            assert q[QUANTILES // 2] == pytest.approx(np.median(want), abs=1e-2)


def test_compressed_gaps_of_long_flows_come_back(real) -> None:
    entry = _entry(real)
    # what the denoiser does to long flows: every gap ten times too short
    squeezed = real.copy()
    order = np.lexsort((real.ts_ns, real.flow))
    flow, gap, length = _gaps(real)
    first = np.maximum.accumulate(np.where(gap < 0, np.arange(len(order)), 0))
    short_gap = np.where(gap < 0, 0, np.where(length >= 9, gap // 10, gap))
    total = np.cumsum(short_gap)
    squeezed.ts_ns = squeezed.ts_ns.copy()
    squeezed.ts_ns[order] = real.ts_ns[order][first] + total - total[first]
    out = calibrate_gaps(squeezed, entry)
    assert out.n_packets == real.n_packets
    f2, gap2, length2 = _gaps(out)
    assert np.array_equal(f2, flow) and np.array_equal(length2, length)
    short = (gap >= 0) & (length < 9)
    assert np.array_equal(gap2[short], gap[short])  # short flows untouched
    long = (gap >= 0) & (length >= 9)
    before = np.log1p(gap[long] / 1e3)
    after = np.log1p(gap2[long] / 1e3)
    squeezed_log = np.log1p(short_gap[long] / 1e3)
    # the squeezed median is far off; calibrated, the distribution is the real one again
    assert abs(np.median(squeezed_log) - np.median(before)) > 1.0
    assert abs(np.median(after) - np.median(before)) < 0.1
    assert abs(np.quantile(after, 0.9) - np.quantile(before, 0.9)) < 0.2
    # packets keep their order within each flow
    assert (gap2[gap2 >= 0] >= 0).all()
    assert calibrate_gaps(real, None) is real
