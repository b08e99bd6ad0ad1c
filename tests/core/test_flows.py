"""Flow assembly: keys, originators, timeouts, restarts, caps."""

from __future__ import annotations

import numpy as np
import pytest

from netdiffusion.flows import assemble_flows, cap_flows
from tests.packets import Pkt, make_traffic

SYN, SYNACK, ACK, FIN, RST = 0x02, 0x12, 0x10, 0x11, 0x14
C, S = "10.0.0.1", "10.0.0.2"


def test_tcp_handshake_originator_is_syn_sender_even_when_synack_comes_first() -> None:
    t = make_traffic(
        [
            Pkt(0.0, S, C, sport=443, dport=5000, flags=SYNACK),  # SYN-ACK captured before the SYN
            Pkt(0.1, C, S, sport=5000, dport=443, flags=SYN),
            Pkt(0.2, C, S, sport=5000, dport=443, flags=ACK),
        ]
    )
    f = assemble_flows(t)
    assert f.n_flows == 1
    assert f.direction.tolist() == [1, 0, 0]


def test_synack_only_makes_its_receiver_the_originator() -> None:
    t = make_traffic(
        [
            Pkt(0.0, S, C, sport=443, dport=5000, flags=SYNACK),
            Pkt(0.1, C, S, sport=5000, dport=443, flags=ACK),
        ]
    )
    assert assemble_flows(t).direction.tolist() == [1, 0]


def test_udp_first_sender_and_separate_keys() -> None:
    t = make_traffic(
        [
            Pkt(0.0, C, S, proto=17, sport=5353, dport=53, payload=b"q"),
            Pkt(0.1, S, C, proto=17, sport=53, dport=5353, payload=b"r"),
            Pkt(0.2, C, S, proto=17, sport=5354, dport=53, payload=b"q"),
            Pkt(0.3, C, S, proto=6, sport=5353, dport=53, flags=SYN),
        ]
    )
    f = assemble_flows(t)
    assert f.n_flows == 3
    assert f.flow.tolist() == [0, 0, 1, 2]
    assert f.direction.tolist() == [0, 1, 0, 0]
    assert (f.flow_label == -1).all()


def test_idle_timeouts_follow_zeek_defaults() -> None:
    t = make_traffic(
        [
            Pkt(0.0, C, S, proto=17, sport=1, dport=2),
            Pkt(59.0, C, S, proto=17, sport=1, dport=2),  # < 60 s: same flow
            Pkt(120.0, C, S, proto=17, sport=1, dport=2),  # 61 s gap: new flow
            Pkt(0.0, C, S, sport=1, dport=2, flags=ACK),
            Pkt(299.0, C, S, sport=1, dport=2, flags=ACK),  # TCP: 5 min
            Pkt(600.0, C, S, sport=1, dport=2, flags=ACK),
        ]
    )
    f = assemble_flows(t)
    assert f.n_flows == 4
    assert f.flow[0] == f.flow[1] != f.flow[2]
    assert f.flow[3] == f.flow[4] != f.flow[5]


def test_syn_after_fin_restarts_but_retransmitted_syn_does_not() -> None:
    t = make_traffic(
        [
            Pkt(0.0, C, S, sport=7, dport=80, flags=SYN),
            Pkt(1.0, C, S, sport=7, dport=80, flags=SYN),  # retransmission: same flow
            Pkt(1.1, S, C, sport=80, dport=7, flags=SYNACK),
            Pkt(1.2, C, S, sport=7, dport=80, flags=FIN),
            Pkt(1.3, S, C, sport=80, dport=7, flags=RST),
            Pkt(2.0, C, S, sport=7, dport=80, flags=SYN),  # port reuse: new flow
            Pkt(2.1, S, C, sport=80, dport=7, flags=SYNACK),
        ]
    )
    f = assemble_flows(t)
    assert f.flow.tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert f.direction.tolist() == [0, 0, 1, 0, 1, 0, 1]


def test_icmp_echo_groups_by_id_and_request_sender_originates() -> None:
    t = make_traffic(
        [
            Pkt(0.0, S, C, proto=1, icmp_type=0, icmp_id=9, icmp_seq=1),  # reply seen first
            Pkt(0.1, C, S, proto=1, icmp_type=8, icmp_id=9, icmp_seq=2),
            Pkt(0.2, C, S, proto=1, icmp_type=8, icmp_id=10, icmp_seq=1),
            Pkt(0.3, S, C, proto=1, icmp_type=3, icmp_code=3),
        ]
    )
    f = assemble_flows(t)
    assert f.n_flows == 3
    assert f.flow[0] == f.flow[1]
    assert f.direction[:2].tolist() == [1, 0]


def test_flows_of_different_files_never_merge() -> None:
    a = make_traffic([Pkt(0.0, C, S, proto=17, sport=1, dport=2)], file="a.pcap")
    b = make_traffic([Pkt(0.5, C, S, proto=17, sport=1, dport=2)], file="b.pcap")
    from netdiffusion import Traffic

    f = assemble_flows(Traffic.concat([a, b]))
    assert f.n_flows == 2


def test_cap_flows_keeps_first_packets_and_counts_truncated() -> None:
    pkts = [Pkt(i * 0.1, C, S, proto=17, sport=1, dport=2) for i in range(5)]
    pkts += [Pkt(0.05, C, S, proto=17, sport=3, dport=4)]
    f = assemble_flows(make_traffic(pkts))
    capped, truncated = cap_flows(f, 3)
    assert truncated == 1
    assert capped.n_packets == 4
    assert np.bincount(capped.flow).tolist() == [3, 1]
    with pytest.raises(ValueError):
        cap_flows(f, 0)
