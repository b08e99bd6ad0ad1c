"""Repair of generated traffic: invariants on random noise, checked by an independent checker."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netdiffusion import Traffic
from netdiffusion.repair import RepairError, RepairStats, repair
from tests.core.repair._checker import check


def noise_traffic(seed: int, n_flows: int, max_len: int, held: bool = True) -> Traffic:
    """Pure noise: every header bit random, random flow sizes, directions, times and lengths."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, max_len + 1, n_flows)
    n = int(lens.sum())
    t = Traffic.empty(n)
    t.flow = rng.permutation(np.repeat(np.arange(n_flows), lens)).astype(np.int64)
    t.ip[:] = rng.integers(0, 256, t.ip.shape, dtype=np.uint8)
    t.l4[:] = rng.integers(0, 256, t.l4.shape, dtype=np.uint8)
    # bias some flows towards plausible values so options/ICMP/UDP paths are exercised
    t.ip[:, 9] = rng.choice([1, 6, 17, 6, 6, 17, 0, 200], n)
    t.l4[rng.random(n) < 0.3, 20:32] = [2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 1, 0]
    t.direction = rng.integers(0, 2, n).astype(np.int8)
    addr = rng.integers(0, 256, (n_flows, 2, 4), dtype=np.uint8)
    t.ip[:, 12:16] = addr[t.flow, t.direction]
    t.ip[:, 16:20] = addr[t.flow, 1 - t.direction]
    t.ts_ns = 1_700_000_000 * 10**9 + rng.integers(0, 10**10, n)
    t.ts_ns[rng.random(n) < 0.2] = 1_700_000_000 * 10**9  # ties
    big = rng.random(n) < 0.5
    t.payload_len = np.where(big, rng.integers(0, 70000, n), rng.integers(0, 3, n)).astype(np.int32)
    if held:  # hold a random prefix of the payload for some packets
        h = np.minimum(t.payload_len, rng.integers(0, 40, n)) * (rng.random(n) < 0.5)
        t.payload_off = np.concatenate([[0], np.cumsum(h)]).astype(np.int64)
        t.payload = rng.integers(0, 256, int(t.payload_off[-1]), dtype=np.uint8)
    t.flow_label = rng.integers(0, 2, n_flows).astype(np.int32)
    t.classes = ["a", "b"]
    return t


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**31),
    st.integers(1, 30),
    st.integers(1, 25),
    st.sampled_from([1500, 576, 9000]),
)
def test_noise_repairs_to_valid_traffic(seed: int, n_flows: int, max_len: int, mtu: int) -> None:
    t = noise_traffic(seed, n_flows, max_len)
    out, report = repair(t, synthetic=True, mtu=mtu, seed=seed)
    problems = check(out, mtu=mtu)
    assert problems == [], problems[:10]
    assert report.packets_out == out.n_packets <= t.n_packets
    assert report.fixed.get("tcp_dup_ack_dropped", 0) == t.n_packets - out.n_packets
    assert report.fixed["ip_checksum"] > 0
    # idempotence: repairing repaired traffic changes nothing
    again, report2 = repair(out, synthetic=True, mtu=mtu, seed=seed + 1)
    assert report2.fixed == {}
    for col in ("ts_ns", "ip", "l4", "payload_len", "payload", "payload_off", "flow", "direction"):
        assert np.array_equal(getattr(again, col), getattr(out, col)), col


def test_redundant_pure_acks_carry_a_byte() -> None:
    t = noise_traffic(3, 40, 30)
    t.payload_len[:] = np.where(np.arange(t.n_packets) % 3 == 0, 0, 100)
    t.ip[:, 9] = 6
    t.payload_off[:] = 0
    t.payload = np.zeros(0, np.uint8)
    out, report = repair(t, synthetic=True)
    assert report.fixed["tcp_ack_given_a_byte"] > 0
    assert check(out) == []
    assert t.n_packets - out.n_packets == report.fixed.get("tcp_dup_ack_dropped", 0)


def test_service_port_and_isn_kept() -> None:
    t = noise_traffic(5, 1, 1)
    t = Traffic.concat([t] * 8)
    t.flow[:] = 0
    t.flow_label = t.flow_label[:1]
    t.ts_ns = np.arange(8, dtype=np.int64) * 1_000_000
    t.direction = np.array([0, 1, 0, 1, 0, 1, 1, 0], np.int8)
    a, b = t.ip[0, 12:16].copy(), t.ip[0, 16:20].copy()
    t.ip[:, 12:16] = np.where(t.direction[:, None] == 0, a, b)
    t.ip[:, 16:20] = np.where(t.direction[:, None] == 0, b, a)
    t.ip[:, 9] = 6
    t.ip[5, 9] = 17  # a minority UDP packet is converted
    t.l4[:, 0:4] = np.where(t.direction[:, None] == 0, [0xC3, 0x50, 1, 0xBB], [1, 0xBB, 0xC3, 0x50])
    t.l4[3, 2:4] = [0, 80]  # one noisy responder port
    t.l4[:, 4:8] = [0x12, 0x34, 0x56, 0x78]
    t.l4[1, 4:8] = [0, 0, 0, 7]
    t.l4[:, 13] = 0x18
    t.payload_len[:] = 100
    out, report = repair(t, synthetic=True)
    assert check(out) == []
    sport = out.l4[:, 0].astype(int) << 8 | out.l4[:, 1]
    dport = out.l4[:, 2].astype(int) << 8 | out.l4[:, 3]
    assert set(np.where(out.direction == 0, dport, sport)) == {443}
    assert set(np.where(out.direction == 0, sport, dport)) == {0xC350}
    assert out.l4[0, 4:8].tolist() == [0x12, 0x34, 0x56, 0x78]  # SYN keeps the ISN
    assert out.l4[1, 4:8].tolist() == [0, 0, 0, 7]
    assert (out.proto == 6).all() and report.fixed["ip_protocol"] >= 1


def test_stats_snap_ttl() -> None:
    t = noise_traffic(11, 20, 6)
    learned = Traffic.empty(4)
    learned.flow = np.array([0, 0, 1, 1])
    learned.flow_label = np.array([0, 1], np.int32)
    learned.classes = ["a", "b"]
    learned.ip[:, 8] = [64, 64, 128, 128]
    stats = RepairStats.learn(learned)
    assert stats.ttl_modes == {"a": (64,), "b": (128,)}
    out, _ = repair(t, synthetic=True, stats=stats)
    want = np.array([64, 128])[out.flow_label[out.flow]]
    assert np.array_equal(out.ip[:, 8], want)
    assert check(out) == []


def test_bad_input_is_one_line_error() -> None:
    t = noise_traffic(1, 2, 2)
    t.flow[0] = -1
    with pytest.raises(RepairError, match="assemble flows"):
        repair(t, synthetic=True)
    with pytest.raises(RepairError, match="MTU"):
        repair(noise_traffic(1, 2, 2), synthetic=True, mtu=10)
    out, report = repair(Traffic.empty(0), synthetic=True)
    assert out.n_packets == 0 and report.fixed == {}


def test_long_one_way_flow_gets_window_scaling() -> None:
    t = noise_traffic(7, 1, 1)
    t = Traffic.concat([t] * 200)
    t.flow[:] = 0
    t.flow_label = t.flow_label[:1]
    t.ts_ns = np.arange(200, dtype=np.int64) * 1000
    t.direction[:] = 1
    t.direction[:3] = [0, 1, 0]
    t.ip[:, 9] = 6
    t.l4[:, 12] = 0x50  # no options generated
    t.payload_len[:] = 1400
    out, _ = repair(t, synthetic=True)
    assert check(out) == []
    syn_opts = out.l4[0, 20 : (out.l4[0, 12] >> 4) * 4].tolist()
    assert 3 in syn_opts  # window scale negotiated so the receiver's window covers 270 kB


def _one_flow(directions: list[int], plens: list[int], proto: int = 6, port: int = 443) -> Traffic:
    """One generated flow with the given directions and payload lengths, 1 ms apart."""
    n = len(directions)
    t = Traffic.empty(n)
    t.flow = np.zeros(n, np.int64)
    t.flow_label = np.zeros(1, np.int32)
    t.classes = ["a"]
    t.direction = np.array(directions, np.int8)
    t.ts_ns = 1_700_000_000 * 10**9 + np.arange(n, dtype=np.int64) * 1_000_000
    a, b = np.array([10, 0, 0, 1], np.uint8), np.array([198, 18, 0, 1], np.uint8)
    t.ip[:, 0] = 0x45
    t.ip[:, 8] = 64
    t.ip[:, 9] = proto
    t.ip[:, 12:16] = np.where(t.direction[:, None] == 0, a, b)
    t.ip[:, 16:20] = np.where(t.direction[:, None] == 0, b, a)
    ports = np.where(t.direction[:, None] == 0, [0xC3, 0x50, port >> 8, port & 255],
                     [port >> 8, port & 255, 0xC3, 0x50])  # fmt: skip
    t.l4[:, 0:4] = ports
    t.l4[:, 12] = 0x50
    t.l4[:, 13] = 0x10
    t.payload_len = np.array(plens, np.int32)
    return t


def test_redundant_ack_is_sent_by_the_peer_when_that_acknowledges_data() -> None:
    # SYN, SYN-ACK, ACK, client data, then a second client pure ACK: nothing new from the server
    # since the client's data, but it is exactly the server's ACK of that data
    t = _one_flow([0, 1, 0, 0, 0], [0, 0, 0, 100, 0])
    out, report = repair(t, synthetic=True)
    assert check(out) == []
    assert out.n_packets == 5 and "tcp_dup_ack_dropped" not in report.fixed
    assert out.direction.tolist() == [0, 1, 0, 0, 1]
    # pure ACKs that acknowledge nothing either way carry a byte each (no flip: the server has
    # nothing new to acknowledge either); the flow keeps its packets
    t = _one_flow([0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0])
    out, report = repair(t, synthetic=True)
    assert check(out) == [] and report.fixed["tcp_ack_given_a_byte"] == 3
    assert out.direction.tolist() == [0, 1, 0, 0, 0, 0] and "direction" not in report.fixed
    assert out.payload_len.tolist() == [0, 0, 0, 1, 1, 1]


def test_redundant_ack_after_its_sides_fin_is_dropped() -> None:
    # SYN, SYN-ACK, ACK, client FIN, server FIN, client ACK of it, client ACK again: nothing
    # may follow the client's FIN but ACKs, and the last one acknowledges nothing new
    t = _one_flow([0, 1, 0, 0, 1, 0, 0], [0] * 7)
    t.l4[[3, 4], 13] = 0x11
    out, report = repair(t, synthetic=True)
    assert check(out) == [] and out.n_packets == 6
    assert report.fixed["tcp_dup_ack_dropped"] == 1 and "tcp_ack_given_a_byte" not in report.fixed
    assert out.l4[:, 13].tolist() == [0x02, 0x12, 0x10, 0x11, 0x11, 0x10]


def test_redundant_ack_waits_for_the_peers_next_data() -> None:
    # SYN, SYN-ACK, ACK, server data, client ACK, client ACK again (nothing new: redundant),
    # server data: the second client ACK goes just after that data and acknowledges it
    t = _one_flow([0, 1, 0, 1, 0, 0, 1], [0, 0, 0, 50, 0, 0, 80])
    out, report = repair(t, synthetic=True)
    assert check(out) == [] and out.n_packets == 7
    assert report.fixed["tcp_ack_delayed"] == 1 and "tcp_dup_ack_dropped" not in report.fixed
    assert out.direction.tolist() == [0, 1, 0, 1, 0, 1, 0]
    assert out.payload_len.tolist() == [0, 0, 0, 50, 0, 80, 0]
    ack = ((out.l4[:, 8:12].astype(np.int64)) * [1 << 24, 1 << 16, 1 << 8, 1]).sum(axis=1)
    seq = ((out.l4[:, 4:8].astype(np.int64)) * [1 << 24, 1 << 16, 1 << 8, 1]).sum(axis=1)
    assert ack[6] == seq[5] + 80  # it acknowledges the data it waited for
    gaps = np.diff(out.ts_ns)
    assert gaps[5] == 1_000_000  # the ACK's own generated gap (1 ms), the data is the last packet
    # two redundant ACKs waiting for the same data: one is sent after it, the other carries a
    # byte of data
    t = _one_flow([0, 1, 0, 1, 0, 0, 0, 1], [0, 0, 0, 50, 0, 0, 0, 80])
    out, report = repair(t, synthetic=True)
    assert check(out) == [] and out.n_packets == 8
    assert report.fixed["tcp_ack_delayed"] == 1 and report.fixed["tcp_ack_given_a_byte"] == 1
    assert "tcp_dup_ack_dropped" not in report.fixed


def test_acks_in_a_row_acknowledge_the_peers_segments_one_by_one() -> None:
    # SYN, SYN-ACK, ACK, two server segments, then two client pure ACKs: the first acknowledges
    # the first segment, the second the rest (an ACK per segment); neither is dropped
    t = _one_flow([0, 1, 0, 1, 1, 0, 0], [0, 0, 0, 50, 40, 0, 0])
    out, report = repair(t, synthetic=True)
    assert check(out) == [] and out.n_packets == 7
    assert "tcp_dup_ack_dropped" not in report.fixed and "tcp_ack_delayed" not in report.fixed
    ack = ((out.l4[:, 8:12].astype(np.int64)) * [1 << 24, 1 << 16, 1 << 8, 1]).sum(axis=1)
    seq = ((out.l4[:, 4:8].astype(np.int64)) * [1 << 24, 1 << 16, 1 << 8, 1]).sum(axis=1)
    assert ack[5] == seq[3] + 50 and ack[6] == seq[4] + 40
    # a third ACK has no segment of its own: it carries a byte, the two others stay as they were
    t = _one_flow([0, 1, 0, 1, 1, 0, 0, 0], [0, 0, 0, 50, 40, 0, 0, 0])
    out2, report = repair(t, synthetic=True)
    assert check(out2) == [] and report.fixed["tcp_ack_given_a_byte"] == 1
    assert out2.payload_len.tolist() == [0, 0, 0, 50, 40, 0, 0, 1]
    assert np.array_equal(out2.l4[:7, 8:12], out.l4[:, 8:12])


def test_acks_lag_so_that_a_later_pure_ack_has_a_segment_to_acknowledge() -> None:
    # two server segments, then client ACK, client data, client ACK: the first ACK acknowledges
    # only the first segment (a delayed ACK), the data packet the same, the last ACK the rest;
    # acknowledging both segments at once would leave the last ACK redundant (flipped or dropped)
    t = _one_flow([0, 1, 0, 1, 1, 0, 0, 0], [0, 0, 0, 50, 40, 0, 30, 0])
    out, report = repair(t, synthetic=True)
    assert check(out) == [] and out.n_packets == 8
    assert out.direction.tolist() == [0, 1, 0, 1, 1, 0, 0, 0]
    assert "direction" not in report.fixed and "tcp_dup_ack_dropped" not in report.fixed
    ack = ((out.l4[:, 8:12].astype(np.int64)) * [1 << 24, 1 << 16, 1 << 8, 1]).sum(axis=1)
    seq = ((out.l4[:, 4:8].astype(np.int64)) * [1 << 24, 1 << 16, 1 << 8, 1]).sum(axis=1)
    assert ack[5] == ack[6] == seq[3] + 50 and ack[7] == seq[4] + 40
    assert ack[2] == seq[1] + 1  # the handshake's ACK acknowledges the SYN-ACK, never less


def test_stats_snap_service_ports_within_a_few_bits() -> None:
    web, dns = _one_flow([0, 1], [10, 10], 6, 80), _one_flow([0, 1], [30, 30], 17, 53)
    learned = Traffic.concat([web, web, dns, dns])
    learned.flow = np.repeat(np.arange(4), 2)
    learned.flow_label = np.zeros(4, np.int32)
    stats = RepairStats.learn(learned)
    assert stats.service_ports == {"a": ((6, 80, 2), (17, 53, 2))}
    assert RepairStats.from_json(stats.to_json()) == stats
    for proto, port, want in ((6, 81, 80), (6, 88, 80), (6, 8080, 8080), (17, 49, 53), (6, 53, 53)):
        out, report = repair(
            _one_flow([0, 1, 0], [0, 0, 0], proto, port), synthetic=True, stats=stats
        )
        sport = int(out.l4[1, 0]) << 8 | int(out.l4[1, 1])
        assert sport == want, (proto, port)
        assert ("service_port_snapped" in report.fixed) == (want != port)
        assert check(out) == []


def test_empty_datagram_to_a_templated_service_becomes_the_shortest_message() -> None:
    from netdiffusion.emit.payload import UDP_TEMPLATE_MIN

    out, report = repair(_one_flow([0, 1, 0], [0, 40, 0], 17, 53), synthetic=True)
    assert out.payload_len.tolist() == [UDP_TEMPLATE_MIN[53], 40, UDP_TEMPLATE_MIN[53]]
    assert report.fixed["udp_empty_message"] == 2 and check(out) == []
    out, _ = repair(_one_flow([0, 1], [0, 5], 17, 40000), synthetic=True)
    assert out.payload_len.tolist() == [0, 5]  # no template: an empty datagram stays empty


def test_flow_without_responder_is_an_unanswered_attempt() -> None:
    t = _one_flow([0, 0, 0, 0], [0, 30, 0, 7])
    t.l4[:, 14:16] = [[1, 0], [2, 0], [3, 0], [4, 0]]  # the model's windows vary
    t.l4[:, 13] = [0x02, 0x18, 0x10, 0x11]
    out, _ = repair(t, synthetic=True)
    assert check(out) == [] and out.n_packets == 4
    assert (out.l4[:, 13] == 0x02).all() and (out.payload_len == 0).all()
    assert (out.direction == 0).all()
    assert len({out.l4[i, 4:8].tobytes() for i in range(4)}) == 1  # one ISN, retransmitted
    assert (out.l4[:, 8:12] == 0).all() and len({out.l4[i, 14:16].tobytes() for i in range(4)}) == 1
    # with one responder packet anywhere, it is a handshake again
    out, _ = repair(_one_flow([0, 0, 0, 1], [0, 30, 0, 7]), synthetic=True)
    assert out.l4[:3, 13].tolist() == [0x02, 0x12, 0x10] and check(out) == []


def _attempt(gaps_s: list[float]) -> Traffic:
    t = _one_flow([0] * (len(gaps_s) + 1), [0] * (len(gaps_s) + 1))
    t.ts_ns = t.ts_ns[0] + np.r_[0, np.cumsum(np.array(gaps_s) * 1e9)].astype(np.int64)
    return t


def test_unanswered_syn_retries_back_off_on_the_retransmission_timer() -> None:
    out, _ = repair(_attempt([0.8, 1.5, 3.9, 9.0, 12.0, 30.0, 50.0, 70.0, 20.0]), synthetic=True)
    assert check(out) == [] and (out.l4[:, 13] == 0x02).all()
    waits = np.diff(out.ts_ns) / 1e9
    want = 1.0 * 2.0 ** np.minimum(np.arange(9), 6)  # 1, 2, 4, ... 64 s, then 64 s again
    assert np.all(waits >= want) and np.all(waits <= want * 1.01)  # timers fire 0-1 % late
    assert len(set(np.round(waits / want, 6).tolist())) > 1  # and not all equally late
    # a first wait nearer 3 s: an older stack's initial timeout
    waits = np.diff(repair(_attempt([2.4, 7.0]), synthetic=True)[0].ts_ns) / 1e9
    assert 3.0 <= waits[0] <= 3.03 and 6.0 <= waits[1] <= 6.06
    # waits far from any timeout (a second attempt minutes later) are kept
    t = _attempt([40.0, 300.0])
    assert (repair(t, synthetic=True)[0].ts_ns == t.ts_ns).all()
    # the same input, the same times
    again = repair(_attempt([0.8, 1.5, 3.9]), synthetic=True)[0].ts_ns
    assert (again == repair(_attempt([0.8, 1.5, 3.9]), synthetic=True)[0].ts_ns).all()


def test_flows_between_the_same_hosts_get_distinct_client_ports() -> None:
    flows = [_one_flow([0, 1, 0], [0, 0, 0]) for _ in range(40)]  # one client port for all
    t = Traffic.concat(flows)
    t.flow = np.repeat(np.arange(40), 3)
    t.flow_label = np.zeros(40, np.int32)
    t.ts_ns = t.ts_ns + t.flow * 10**9
    out, report = repair(t, synthetic=True)
    assert check(out) == []
    syn = out.l4[:, 13] == 0x02
    client_port = (out.l4[syn, 0].astype(int) << 8) | out.l4[syn, 1]
    assert len(client_port) == 40 and len(set(client_port.tolist())) == 40
    assert client_port.min() >= 49152
    assert report.fixed["client_port_reused"] == 39 * 3
