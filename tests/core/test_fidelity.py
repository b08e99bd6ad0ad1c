"""Fidelity measures: known-answer Jensen-Shannon divergences (in bits: identical histograms 0,
disjoint ones 1), per-flow and per-packet fields of hand-built and real traffic, and the naive
baselines keep marginals while breaking joints."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from netdiffusion import fidelity as fd
from netdiffusion._traffic import Traffic


def _traffic() -> Traffic:
    """Two flows: TCP to port 443 (3 packets, directions 0 1 1) and ICMP (1 packet)."""
    t = Traffic.empty(4)
    t.ip[:, 0] = 0x45
    sizes = [60, 1500, 40, 84]
    t.ip[:, 2] = np.array(sizes) >> 8
    t.ip[:, 3] = np.array(sizes) & 0xFF
    t.ip[:, 8] = [64, 128, 128, 255]
    t.ip[:, 9] = [6, 6, 6, 1]
    # TCP ports: client 40000 -> server 443, replies 443 -> 40000
    for i, (sp, dp) in enumerate([(40000, 443), (443, 40000), (443, 40000)]):
        t.l4[i, 0:4] = [sp >> 8, sp & 0xFF, dp >> 8, dp & 0xFF]
    t.l4[:3, 13] = [0x02, 0x12, 0x10]
    t.l4[:3, 14:16] = [[0xFF, 0xFF], [0x10, 0x00], [0x00, 0x00]]
    t.l4[3, 0] = 8  # echo request
    # packet order is not time order: fields must sort by time within each flow
    t.ts_ns[:] = [1_000_000_000, 1_000_100_000, 1_000_100_000, 500_000_000]
    t.flow[:] = [0, 0, 0, 1]
    t.direction[:] = [0, 1, 1, 0]
    t.flow_label = np.array([1, 0], np.int32)
    t.classes = ["b", "a"]
    return t


# -- Jensen-Shannon divergence ------------------------------------------------------------------


def test_jsd_identical_is_zero_and_disjoint_is_one() -> None:
    a = np.array([1, 2, 2, 3, 7])
    assert fd.jsd(a, a) == 0.0
    assert fd.jsd(a, a[::-1].copy()) == 0.0  # order does not matter
    assert fd.jsd(np.repeat(a, 3), a) == pytest.approx(0.0, abs=1e-12)  # only proportions do
    assert fd.jsd(np.array([0, 1, 1]), np.array([2, 3])) == 1.0
    assert math.isnan(fd.jsd(np.array([], np.int64), a))


def test_jsd_known_values() -> None:
    # p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4);
    # JSD = 1/2 KL(p|m) + 1/2 KL(q|m) = 1/2 log2(4/3) + 1/2 (1/2 log2(2/3) + 1/2 log2 2)
    expected = 0.5 * math.log2(4 / 3) + 0.25 * math.log2(2 / 3) + 0.25 * 1.0
    got = fd.jsd(np.array([0, 0]), np.array([0, 1]))
    assert got == pytest.approx(expected, rel=1e-12)
    assert got == pytest.approx(0.31127812445913283, rel=1e-12)
    # symmetric, and agrees with scipy's Jensen-Shannon distance squared (base 2)
    distance = pytest.importorskip("scipy.spatial.distance")
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 6, 500), rng.integers(2, 9, 300)
    p = np.bincount(a, minlength=9) / len(a)
    q = np.bincount(b, minlength=9) / len(b)
    assert fd.jsd(a, b) == pytest.approx(fd.jsd(b, a), rel=1e-12)
    assert fd.jsd(a, b) == pytest.approx(distance.jensenshannon(p, q, base=2) ** 2, rel=1e-9)


def test_binning_is_shared_and_fixed() -> None:
    # the same bin on both sides whatever the other values: 995 and 1005 bytes share a
    # 16-byte size bin, so two samples differing only inside bins have JSD 0
    assert fd.field_jsd(
        fd.Fields({"size": np.array([995.0, 40.0])}, np.zeros(2, np.int32)),
        fd.Fields({"size": np.array([1005.0, 47.0])}, np.zeros(2, np.int32)),
    ) == {"size": 0.0}
    ids = fd.bin_ids("packets", np.array([1, 2, 32, 33, 64, 1e6]))
    assert list(ids[:3]) == [1, 2, 32] and ids[3] > 32 and ids[4] > ids[3] and ids[5] > ids[4]
    dur = fd.bin_ids("duration", np.array([0.0, 1e-6, 2e-6, 1.0, np.nan]))
    assert len(dur) == 4 and dur[0] == 0 and dur[1] == 1 and dur[2] == 5 and dur[3] > dur[2]
    assert list(fd.bin_ids("log_iat", np.array([-9.0, -3.0, -2.9]))) == [-36, -12, -12]
    assert set(fd.BINNING) >= set(fd.FLOW_FIELDS) | set(fd.PACKET_FIELDS)


# -- fields ---------------------------------------------------------------------------------------


def test_flow_fields_by_hand() -> None:
    f = fd.flow_fields(_traffic())
    c = f.columns
    assert list(f.label) == [1, 0] and f.classes == ["b", "a"]
    assert list(c["packets"]) == [3, 1]
    assert list(c["bytes"]) == [1600, 84]
    assert c["duration"][0] == pytest.approx(1e-4) and c["duration"][1] == 0
    # directions 0 1 1 -> bits 0b110 plus the length sentinel 1 << 3; one packet, dir 0 -> 0b10
    assert list(c["direction_pattern"]) == [0b1110, 0b10]
    assert c["mean_size"][0] == pytest.approx(1600 / 3)
    assert c["std_size"][0] == pytest.approx(np.std([60, 1500, 40]))
    assert c["mean_iat"][0] == pytest.approx(5e-5) and c["mean_iat"][1] == 0
    assert list(c["service_port"]) == [443, -1]
    assert list(c["protocol"]) == [6, 1]


def test_packet_fields_by_hand() -> None:
    p = fd.packet_fields(_traffic())
    c = p.columns
    # rows sorted by (flow, time): flow 0's three packets then flow 1's
    assert list(c["size"]) == [60, 1500, 40, 84]
    assert math.isnan(c["log_iat"][0]) and math.isnan(c["log_iat"][3])
    assert c["log_iat"][1] == pytest.approx(-4.0) and c["log_iat"][2] == -9.0  # zero gap
    assert list(c["ttl"]) == [64, 128, 128, 255]
    assert list(c["tcp_flags"][:3]) == [2, 0x12, 0x10] and math.isnan(c["tcp_flags"][3])
    assert list(c["tcp_window"][:3]) == [65535, 4096, 0] and math.isnan(c["tcp_window"][3])
    assert list(c["service_port"]) == [443, 443, 443, -1]
    assert list(c["protocol"]) == [6, 6, 6, 1]
    assert list(p.label) == [1, 1, 1, 0]


@pytest.fixture(scope="module")
def real(shared_data: Path) -> Traffic:
    from netdiffusion.flows import assemble_flows
    from netdiffusion.inputs import expand_captures, read_captures
    from netdiffusion.labels import label_by_folder

    base = shared_data / "iot-sentinel" / "captures"
    classes = ["EdnetGateway", "Lightify", "WeMoSwitch"]
    if not all((base / c).is_dir() for c in classes):
        pytest.skip("IoT SENTINEL captures not found")
    t, _ = read_captures(expand_captures([base / c for c in classes]), progress=False)
    return label_by_folder(assemble_flows(t))[0]


def test_flow_fields_of_real_traffic_match_a_per_flow_count(real: Traffic) -> None:
    f = fd.flow_fields(real)
    assert len(f) == real.n_flows
    size = (real.ip[:, 2].astype(np.int64) << 8) | real.ip[:, 3]
    # oracle: per-flow sums by a plain loop over flows (test only)
    for k in np.random.default_rng(0).choice(real.n_flows, 40, replace=False):
        rows = np.flatnonzero(real.flow == k)
        ts = np.sort(real.ts_ns[rows])
        assert f.columns["packets"][k] == len(rows)
        assert f.columns["bytes"][k] == size[rows].sum()
        assert f.columns["duration"][k] == pytest.approx((ts[-1] - ts[0]) / 1e9, abs=1e-9)
        assert f.classes[f.label[k]] == real.classes[real.flow_label[k]]
    p = fd.packet_fields(real)
    assert len(p) == int((real.flow >= 0).sum())
    # the log IAT is missing exactly once per flow
    assert int(np.isnan(p.columns["log_iat"]).sum()) == real.n_flows
    # TCP-only columns are present exactly on TCP packets
    assert int((~np.isnan(p.columns["tcp_flags"])).sum()) == int((real.proto == 6).sum())


def test_real_vs_itself_and_vs_other_class(real: Traffic) -> None:
    f = fd.flow_fields(real)
    same = fd.field_jsd(f, f)
    assert set(same) >= set(fd.FLOW_FIELDS) and all(v == 0 for v in same.values())
    light, wemo = f.of_class("Lightify"), f.of_class("WeMoSwitch")
    diff = fd.field_jsd(light, wemo, fd.FLOW_FIELDS)
    assert diff["protocol"] > 0.1  # Lightify is UDP only, WeMoSwitch mostly TCP
    assert diff["service_port"] > 0.3
    assert len(f.of_class("nope")) == 0


# -- baselines -------------------------------------------------------------------------------------


def test_independent_marginals_keep_marginals_and_break_joints() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 20, 4000).astype(np.float64)
    train = fd.Fields(
        {"ttl": x, "service_port": x.copy()},
        (x >= 10).astype(np.int32),
        ["low", "high"],
    )
    out = fd.independent_marginals(train, {"low": 3000, "high": 1000, "absent": 5}, seed=2)
    assert len(out) == 4000 and out.classes == ["low", "high"]
    low = out.of_class("low")
    assert len(low) == 3000 and set(np.unique(low.columns["ttl"])) <= set(range(10))
    for k, v in fd.field_jsd(low, train.of_class("low")).items():
        assert v < 0.01, k
    # in training the two columns are always equal; resampled independently, about 1 in 10
    agree = float((low.columns["ttl"] == low.columns["service_port"]).mean())
    assert 0.05 < agree < 0.16
    again = fd.independent_marginals(train, out, seed=2)
    assert np.array_equal(again.columns["ttl"], out.columns["ttl"])  # counts from Fields, seeded


def test_independent_packet_flows(real: Traffic) -> None:
    flows, packets = fd.flow_fields(real), fd.packet_fields(real)
    out = fd.independent_packet_flows(flows, packets, flows, seed=0)
    assert len(out) == len(flows) and set(out.columns) == set(flows.columns)
    for c in ("EdnetGateway", "WeMoSwitch"):
        real_c, base_c = flows.of_class(c), out.of_class(c)
        assert len(real_c) == len(base_c)
        # lengths come from the class's own marginal
        assert fd.field_jsd(real_c, base_c, ["packets"])["packets"] < 0.05
        # bytes is consistent with the sampled packets: mean size * packets
        c2 = base_c.columns
        assert np.allclose(c2["bytes"], c2["mean_size"] * c2["packets"])
        # port and protocol are drawn per packet: values the class's packets carry
        pk = packets.of_class(c).columns
        assert set(c2["service_port"]) <= set(pk["service_port"])
        assert set(c2["protocol"]) <= set(pk["protocol"])
    # the direction pattern of a flow of iid packets is far from the real one
    j = fd.field_jsd(flows, out, ["direction_pattern", "std_size"])
    assert j["direction_pattern"] > 0.05


# -- classifiers -----------------------------------------------------------------------------------


def test_flow_matrix_and_discriminator(real: Traffic) -> None:
    pytest.importorskip("sklearn")
    f = fd.flow_fields(real)
    x = fd.flow_matrix(f)
    assert x.shape == (len(f), len(fd.FLOW_FIELDS)) and x.dtype == np.float32
    assert not np.isnan(x).any()
    rng = np.random.default_rng(0)
    half = rng.permutation(len(f))
    a, b = f.take(half[: len(f) // 2]), f.take(half[len(f) // 2 :])
    assert fd.discriminator_auc(a, b, seed=0) < 0.62  # two halves of one sample
    light, wemo = f.of_class("Lightify"), f.of_class("WeMoSwitch")
    assert fd.discriminator_auc(light, wemo, seed=0) > 0.95
    clf = fd.train_random_forest(x, f.label, seed=0, n_estimators=30)
    assert (clf.predict(x) == f.label).mean() > 0.8
