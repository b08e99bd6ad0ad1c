"""Every evaluation metric on constructed cases whose answer is known."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from netdiffusion._traffic import Traffic
from netdiffusion.checksum import fill_checksums
from netdiffusion.evaluation import fidelity as fid
from netdiffusion.evaluation import privacy as priv
from netdiffusion.evaluation import utility as util
from netdiffusion.evaluation import validity as val
from netdiffusion.evaluation._data import keep_classes, match_counts, split_by_file, take_flows
from netdiffusion.flows import assemble_flows
from tests.packets import Pkt, make_traffic

pytest.importorskip("sklearn")


def _tcp_flow(k: int, *, ttl: int = 64, size: int = 100, port: int = 443) -> list[Pkt]:
    """A clean TCP connection: handshake, one request, one answer, FIN both ways."""
    c, s, cp = f"10.0.{k // 250}.{k % 250 + 1}", "198.18.0.1", 40000 + k
    t0 = k * 10.0
    a, b = 1000 + k, 5000 + k
    return [
        Pkt(t0, c, s, sport=cp, dport=port, flags=0x02, seq=a, ttl=ttl),
        Pkt(t0 + 0.01, s, c, sport=port, dport=cp, flags=0x12, seq=b, ack=a + 1, ttl=ttl),
        Pkt(t0 + 0.02, c, s, sport=cp, dport=port, flags=0x10, seq=a + 1, ack=b + 1, ttl=ttl),
        Pkt(t0 + 0.03, c, s, sport=cp, dport=port, flags=0x18, seq=a + 1, ack=b + 1,
            payload=b"x" * size, ttl=ttl),
        Pkt(t0 + 0.05, s, c, sport=port, dport=cp, flags=0x18, seq=b + 1, ack=a + 1 + size,
            payload=b"y" * (2 * size), ttl=ttl),
        Pkt(t0 + 0.06, c, s, sport=cp, dport=port, flags=0x11, seq=a + 1 + size,
            ack=b + 1 + 2 * size, ttl=ttl),
        Pkt(t0 + 0.07, s, c, sport=port, dport=cp, flags=0x11, seq=b + 1 + 2 * size,
            ack=a + 2 + size, ttl=ttl),
        Pkt(t0 + 0.08, c, s, sport=cp, dport=port, flags=0x10, seq=a + 2 + size,
            ack=b + 2 + 2 * size, ttl=ttl),
    ]  # fmt: skip


def _traffic(n: int, label: str = "web", **kw: int) -> Traffic:
    pkts = [p for k in range(n) for p in _tcp_flow(k, **kw)]
    t = assemble_flows(fill_checksums(make_traffic(pkts)))
    t.flow_label = np.zeros(t.n_flows, np.int32)
    t.classes = [label]
    return t


# -- fidelity -------------------------------------------------------------------------------------


def test_per_column_distances_identical_and_disjoint() -> None:
    p = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    d = fid.per_column_distances(p, p)
    for k in ("jsd", "tv", "hellinger"):
        assert np.allclose(d[k], 0.0)
    q = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    r = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    d = fid.per_column_distances(q, r)
    for k in ("jsd", "tv", "hellinger"):
        assert np.allclose(d[k], 1.0), k
    # a known middle case: p = (1, 0), q = (1/2, 1/2)
    d = fid.per_column_distances(np.array([[1.0, 0, 0]]), np.array([[0.5, 0.5, 0]]))
    assert d["tv"][0] == pytest.approx(0.5)
    assert d["hellinger"][0] == pytest.approx(np.sqrt(1 - np.sqrt(0.5)))
    m = np.array([0.75, 0.25])
    want = 0.5 * np.log2(1 / 0.75) + 0.5 * (0.5 * np.log2(0.5 / 0.75) + 0.5 * np.log2(2))
    assert d["jsd"][0] == pytest.approx(want)
    assert m.sum() == 1


def test_nprint_figures_identical_traffic_is_zero_and_ttl_moves_only_ttl_columns() -> None:
    from netdiffusion.nprint import field_slice

    a = _traffic(6)
    figs = fid.nprint_figures(a, a.copy())
    assert all(figs[k] == 0.0 for k in ("jsd", "tv", "hellinger"))
    b = _traffic(6, ttl=128)  # 64 = 0b01000000, 128 = 0b10000000: two TTL bits flip
    d = fid.per_column_distances(fid.column_distributions(a), fid.column_distributions(b))
    ttl, cksum = field_slice("ipv4_ttl"), field_slice("ipv4_cksum")
    assert d["tv"][ttl].tolist() == [1.0, 1.0, 0, 0, 0, 0, 0, 0]
    assert np.allclose(d["jsd"][ttl], d["tv"][ttl])  # disjoint columns: JSD 1 too
    rest = np.ones(len(d["tv"]), np.bool_)
    rest[ttl] = rest[cksum] = False
    assert (d["tv"][rest] == 0).all()  # only TTL and the header checksum change
    figs = fid.nprint_figures(a, b)
    keep = fid.nprint_mask()
    assert figs["tv"] == pytest.approx(d["tv"][keep].mean())
    assert figs["tv"] > 2 / keep.sum() - 1e-12
    assert figs["udp.tv"] == 0.0 and figs["tcp.tv"] == 0.0 and figs["ipv4.tv"] > 0


def test_nprint_disjoint_protocols_reach_the_maximum_per_block() -> None:
    tcp = _traffic(3)
    udp = make_traffic([Pkt(0.0, "10.0.0.1", "10.0.0.2", proto=17, sport=1, dport=53)])
    figs = fid.nprint_figures(tcp, assemble_flows(udp))
    # TCP block: present vs absent (-1) in every non-option column
    assert figs["tcp.tv"] > 0.3
    assert figs["udp.tv"] == pytest.approx(1.0)


def test_emd_known_values() -> None:
    a = np.zeros(50)
    assert fid.emd(a, a) == 0.0
    assert fid.emd(np.zeros(10), np.ones(10)) == pytest.approx(1.0)
    assert fid.emd(np.zeros(10), np.r_[np.zeros(5), np.ones(5)]) == pytest.approx(0.5)
    assert np.isnan(fid.emd(np.zeros(0), a))


def test_field_figures_identical_zero_disjoint_max() -> None:
    from netdiffusion import fidelity as fd

    a = _traffic(8)
    fa, pa = fd.flow_fields(a), fd.packet_fields(a)
    same = fid.field_figures(fa, pa, fa, pa)
    assert all(v == 0.0 for k, v in same.items() if not np.isnan(v)), same
    b = _traffic(8, ttl=200, size=1000, port=8080)
    fb, pb = fd.flow_fields(b), fd.packet_fields(b)
    far = fid.field_figures(fa, pa, fb, pb)
    assert far["packet.ttl.jsd"] == pytest.approx(1.0)
    assert far["flow.service_port.jsd"] == pytest.approx(1.0)
    assert far["flow.service_port.emd"] == pytest.approx(1.0)
    assert far["flow.bytes.jsd"] == pytest.approx(1.0)


# -- utility and discriminator --------------------------------------------------------------------


def _blobs(n: int, centres: list[float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(centres)), n)
    x = rng.normal(0, 0.3, (len(y), 3)) + np.asarray(centres)[y, None]
    return x.astype(np.float32), y


def test_discriminator_identical_near_half_disjoint_one() -> None:
    x, _ = _blobs(200, [0.0], 0)
    auc, fpr, tpr = util.discriminator(x, x.copy(), trees=30)
    assert 0.35 <= auc <= 0.65
    assert fpr[0] == 0 and tpr[-1] == 1
    same_dist, _ = _blobs(200, [0.0], 1)
    assert 0.35 <= util.discriminator(x, same_dist, trees=30)[0] <= 0.65
    far, _ = _blobs(200, [10.0], 2)
    assert util.discriminator(x, far, trees=30)[0] == pytest.approx(1.0)
    assert np.isnan(util.discriminator(x[:2], far)[0])


def test_discriminator_repeats_over_the_larger_side() -> None:
    x, _ = _blobs(150, [0.0], 0)
    more, _ = _blobs(800, [0.0], 1)  # five disjoint draws of 150 rows
    auc, fpr, tpr = util.discriminator(x, more, trees=30)
    assert 0.35 <= auc <= 0.65
    assert fpr[0] == 0 and fpr[-1] == 1 and tpr[0] == 0 and tpr[-1] == pytest.approx(1.0)
    assert (np.diff(tpr) >= -1e-12).all()
    # each draw is one forest: the mean of five lies within their range
    singles = [
        util.discriminator(x, more[i * 150 : (i + 1) * 150], seed=i, trees=30)[0] for i in range(5)
    ]
    assert min(singles) - 0.05 <= auc <= max(singles) + 0.05
    far, _ = _blobs(800, [10.0], 2)
    auc, fpr, tpr = util.discriminator(x, far, trees=30)
    assert auc == pytest.approx(1.0) and tpr[1] == pytest.approx(1.0)


def test_macro_f1_known() -> None:
    y = np.array([0, 0, 1, 1])
    assert util.macro_f1(y, y, ["a", "b"]) == (1.0, {"a": 1.0, "b": 1.0})
    score, per = util.macro_f1(y, np.array([1, 1, 0, 0]), ["a", "b"])
    assert score == 0.0 and per == {"a": 0.0, "b": 0.0}


def test_utility_synthetic_equal_to_real_matches_trtr_and_useless_synthetic_fails() -> None:
    train = {"flow": _blobs(60, [0.0, 3.0, 6.0], 0)}
    test = {"flow": _blobs(40, [0.0, 3.0, 6.0], 1)}
    classes = ["a", "b", "c"]
    good = util.utility_figures(train, train, test, classes, trees=30)
    assert good["trtr.macro_f1"] > 0.95
    assert good["tstr.macro_f1"] == pytest.approx(good["trtr.macro_f1"], abs=0.03)
    assert good["tstr_ratio"] == pytest.approx(1.0, abs=0.05)
    for key in ("augment.10.macro_f1", "augment.100.macro_f1", "trtr.mlp.flow.macro_f1",
                "imbalance.real.rf.flow.minority_f1", "trtr.rf.flow.f1.b"):  # fmt: skip
        assert key in good
    # synthetic with the labels shuffled: a classifier trained on it is no better than chance
    x, y = train["flow"]
    bad = util.utility_figures(
        train, {"flow": (x, np.random.default_rng(0).permutation(y))}, test, classes, trees=30,
        cases=("trtr", "tstr"),
    )  # fmt: skip
    assert bad["tstr.macro_f1"] < 0.6
    assert bad["tstr_ratio"] < 0.7


def test_imbalance_topping_up_with_good_synthetic_helps_the_minority() -> None:
    # overlapping classes: with 10% of the minority's flows, a forest mostly predicts the majority
    train = {"flow": _blobs(100, [0.0, 0.8, 1.6, 2.4], 0)}
    test = {"flow": _blobs(100, [0.0, 0.8, 1.6, 2.4], 1)}
    figs = util.utility_figures(
        train, {"flow": _blobs(100, [0.0, 0.8, 1.6, 2.4], 2)}, test, list("abcd"), trees=50,
        classifiers=("rf",), cases=("imbalance",),
    )  # fmt: skip
    assert figs["imbalance.minority_gain"] > 0


# -- privacy --------------------------------------------------------------------------------------


def test_flow_identity_ignores_addresses_ports_seq_and_sees_sizes() -> None:
    a = _traffic(4)
    ids = priv.flow_identity(a)
    assert len(set(ids.tolist())) == 1  # the same flow shape with other addresses, ports, seq
    b = _traffic(4, size=101)
    assert not np.isin(priv.flow_identity(b), ids).any()
    c = _traffic(4, port=8443)  # the service port is part of the identity
    assert not np.isin(priv.flow_identity(c), ids).any()
    # the gaps are part of it too (to the microsecond), unless timing=False
    d = a.copy()
    last = np.flatnonzero(d.flow == 0)[-1]
    d.ts_ns = d.ts_ns.copy()
    d.ts_ns[last] += 2_000  # 2 us later
    moved = priv.flow_identity(d)
    assert moved[0] != ids[0] and (moved[1:] == ids[1:]).all()
    assert (priv.flow_identity(d, timing=False) == priv.flow_identity(a, timing=False)).all()
    d.ts_ns[last] -= 1_800  # 200 ns from the original: the same microsecond
    assert priv.flow_identity(d)[0] == ids[0]


def test_exact_copies_and_rates() -> None:
    a = np.array([1, 2, 3], np.uint64)
    assert priv.exact_copies(a, a) == (3, 1.0)
    assert priv.exact_copies(a, np.array([4, 5], np.uint64)) == (0, 0.0)
    assert priv.exact_copies(a, np.array([3], np.uint64)) == (1, pytest.approx(1 / 3))
    # only training identities seen once count: 1 twice in training, 2 once, 4 never
    train = np.array([1, 1, 2, 3], np.uint64)
    assert priv.unique_copies(np.array([1, 2, 2, 4], np.uint64), train) == 2
    assert priv.unique_copies(np.array([1, 1], np.uint64), train) == 0


def test_membership_auc_copies_vs_disjoint() -> None:
    members, _ = _blobs(100, [0.0], 0)
    others, _ = _blobs(100, [5.0], 1)
    assert priv.membership_auc(members, others, members.copy()) == pytest.approx(1.0)
    fresh, _ = _blobs(100, [0.0], 2)
    heldout, _ = _blobs(100, [0.0], 3)
    assert 0.35 <= priv.membership_auc(members, heldout, fresh) <= 0.65


def test_privacy_figures_copy_of_train() -> None:
    train = _traffic(6)
    held = _traffic(6, size=300)
    figs = priv.privacy_figures(train, train.copy(), held)
    assert figs["exact_copies"] == 6 and figs["exact_copy_rate"] == 1.0
    assert figs["exact_copies_long"] == 6  # 8 packets each
    assert figs["exact_copies_unique"] == 0  # six equal flows: none is a one-off
    assert figs["header_copies"] == 6 and figs["header_copy_rate"] == 1.0
    assert figs["nn_distance_ratio"] == 0.0
    assert figs["membership_auc"] == pytest.approx(1.0)
    other = priv.privacy_figures(train, held, held)
    assert other["exact_copies"] == 0
    # two equal flows and a one-off, copied: three copies, one of a one-off flow
    pkts = [p for k in range(2) for p in _tcp_flow(k)] + _tcp_flow(2, size=300)
    mixed = assemble_flows(fill_checksums(make_traffic(pkts)))
    mixed.flow_label = np.zeros(mixed.n_flows, np.int32)
    mixed.classes = ["web"]
    figs = priv.privacy_figures(mixed, mixed.copy(), held)
    assert figs["exact_copies"] == 3 and figs["exact_copies_unique"] == 1


# -- validity -------------------------------------------------------------------------------------


def test_structural_checks_clean_flow() -> None:
    figs = val.structural_figures(_traffic(5))
    assert figs["checksum.ip_bad_rate"] == 0.0 and figs["checksum.l4_bad_rate"] == 0.0
    assert figs["length.ip_total_bad_rate"] == 0.0
    assert figs["tcp.handshake_rate"] == 1.0
    for k in ("seq_bad_rate", "ack_unseen_rate", "no_ack_rate", "syn_after_data_rate",
              "after_rst_rate"):  # fmt: skip
        assert figs[f"tcp.{k}"] == 0.0, k
    assert np.isnan(figs["length.udp_bad_rate"])


def test_structural_checks_broken_flow() -> None:
    pkts = _tcp_flow(0)
    pkts[4].seq += 7  # responder's data at the wrong sequence number
    pkts[5].ack += 1000  # originator acknowledges bytes never sent
    pkts[6].flags = 0x04  # responder resets ...
    pkts[7].flags = 0x12  # ... and a SYN-ACK after data, after the RST
    t = assemble_flows(fill_checksums(make_traffic(pkts)))
    figs = val.structural_figures(t)
    assert figs["tcp.handshake_rate"] == 1.0
    assert figs["tcp.seq_bad_rate"] > 0  # the responder's FIN follows the wrong seq
    assert figs["tcp.ack_unseen_rate"] > 0
    assert figs["tcp.after_rst_rate"] == pytest.approx(1 / 8)
    assert figs["tcp.syn_after_data_rate"] == pytest.approx(1 / 8)
    t.ip[0, 10] ^= 0xFF
    t.ip[1, 3] += 1
    figs = val.structural_figures(t)
    assert figs["checksum.ip_bad_rate"] == pytest.approx(2 / 8)
    assert figs["length.ip_total_bad_rate"] == pytest.approx(1 / 8)


def test_distribution_jsd() -> None:
    a = Counter({"SF": 3, "S0": 1})
    assert val.distribution_jsd(a, Counter({"SF": 6, "S0": 2})) == 0.0
    assert val.distribution_jsd(a, Counter({"REJ": 4})) == pytest.approx(1.0)
    assert np.isnan(val.distribution_jsd(a, Counter()))


def test_zeek_states_of_clean_connections() -> None:
    states, hist = val.zeek_states(_traffic(3))
    assert states == Counter({"SF": 3})
    assert sum(hist.values()) == 3


# -- data helpers ---------------------------------------------------------------------------------


def test_take_flows_split_and_match_counts() -> None:
    parts = [_traffic(4, label="a"), _traffic(2, label="b")]
    for i, p in enumerate(parts):
        p.files = [f"/x/{i}/f.pcap"]
        p.file[:] = 0
    t = Traffic.concat(parts)
    t = assemble_flows(t)
    t.flow_label = np.r_[np.zeros(4), np.ones(2)].astype(np.int32)[np.argsort(np.argsort(
        [t.ts_ns[t.flow == f].min() + (f >= 0) * 0 for f in range(t.n_flows)]))]  # fmt: skip
    t.classes = ["a", "b"]
    sub = take_flows(t, np.array([0, 2]))
    assert sub.n_flows == 2 and sub.n_packets == 16
    assert set(np.unique(sub.flow).tolist()) == {0, 1}
    a, b = split_by_file(t, seed=0)
    assert len(a) + len(b) == t.n_flows and not set(a) & set(b)
    m = match_counts(t, {"a": 1, "b": 5})
    assert m.n_flows == 1 + int((t.flow_label == 1).sum())
    only_b = keep_classes(t, ["b"])
    assert only_b.classes == ["b"] and (only_b.flow_label == 0).all()
