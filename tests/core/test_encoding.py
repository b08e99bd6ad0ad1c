"""Encoder/decoder: nPrint bits, flow tensors, and the lossless round trip on real captures."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from netdiffusion import Traffic
from netdiffusion.capture import read_capture
from netdiffusion.encoding import (
    DIRECTION_FEATURE,
    IAT_FEATURE,
    IAT_SCALE,
    N_FEATURES,
    EncodingError,
    bits_to_headers,
    decode_flows,
    encode_flows,
    iat_from_feature,
    iat_to_feature,
    packet_bits,
)
from netdiffusion.flows import assemble_flows
from netdiffusion.nprint import BLOCKS, IPV4_ADDR_SLICE, field_slice

# a few IoT and nDPI files: TCP with options, UDP, ICMP, pcapng, several link types
IOT_FILES = [
    "iot-sentinel/captures/Aria/Setup-C-6-STA.pcap",
    "iot-sentinel/captures/TP-LinkPlugHS110/Setup-A-1-STA.pcap",
    "iot-sentinel/captures/EdimaxPlug1101W/Setup-C-15-STA.pcap",
]
NDPI_FILES = [
    "ndpi/pcap/1kxun.pcap",
    "ndpi/pcap/443-chrome.pcap",
    "ndpi/pcap/dns.pcap",
    "ndpi/pcap/4in4tunnel.pcap",
    "ndpi/pcap/alexa-app.pcapng",
    "ndpi/pcap/dns_fragmented.pcap",
    "ndpi/pcap/badpackets.pcap",
    "ndpi/pcap/bittorrent_tcp_miss.pcapng",
]


def real_traffic(shared_data: Path, names: list[str]) -> Traffic:
    parts = [read_capture(shared_data / n)[0] for n in names if (shared_data / n).exists()]
    if not parts:
        pytest.skip("sample captures missing")
    return Traffic.concat(parts)


def _value(bits: np.ndarray, name: str) -> np.ndarray:
    """Integer value of an nPrint field from 0/1 bits (rows where it is present)."""
    sl = field_slice(name)
    weights = 1 << np.arange(sl.stop - sl.start - 1, -1, -1, dtype=np.int64)
    return (bits[:, sl].astype(np.int64) * weights).sum(axis=1)


def _packet(ip_words: int = 0, proto: int = 6, doff: int = 5, total: int = 0) -> Traffic:
    t = Traffic.empty(1)
    ihl = 5 + ip_words
    t.ip[0, 0] = 0x40 | ihl
    t.ip[0, 2:4] = list((total or 100).to_bytes(2, "big"))
    t.ip[0, 8] = 64
    t.ip[0, 9] = proto
    t.ip[0, 12:20] = [10, 0, 0, 1, 10, 0, 0, 2]
    t.ip[0, 20 : ihl * 4] = 0xAB
    if proto == 6:
        t.l4[0, 0:4] = [0x01, 0xBB, 0xC0, 0x00]
        t.l4[0, 12] = doff << 4
        t.l4[0, 13] = 0x12
        t.l4[0, 20 : doff * 4] = 0x01
    elif proto in (17, 1):
        t.l4[0, 0:8] = [0, 53, 0x30, 0x39, 0, 20, 0xBE, 0xEF]
    return t


# -- packet bits --------------------------------------------------------------------------------


def test_fill_values_follow_header_lengths() -> None:
    t = Traffic.concat(
        [
            _packet(ip_words=2, proto=6, doff=8),
            _packet(proto=17),
            _packet(proto=1),
            _packet(proto=47),
        ]
    )
    b = packet_bits(t)
    assert b.dtype == np.int8 and b.shape == (4, 1088)
    assert set(np.unique(b)) <= {-1, 0, 1}
    ipv4, tcp, udp, icmp = (BLOCKS[k] for k in ("ipv4", "tcp", "udp", "icmp"))
    # TCP packet: IPv4 with 2 option words, TCP with 3 option words; UDP/ICMP absent
    assert (b[0, : 7 * 32] >= 0).all() and (b[0, 7 * 32 : ipv4.stop] == -1).all()
    assert (b[0, tcp.start : tcp.start + 8 * 32] >= 0).all()
    assert (b[0, tcp.start + 8 * 32 : tcp.stop] == -1).all()
    assert (b[0, udp] == -1).all() and (b[0, icmp] == -1).all()
    assert _value(b[:1], "tcp_dprt")[0] == 0xC000 and _value(b[:1], "tcp_doff")[0] == 8
    # UDP: only the UDP block; ICMP: only ICMP; protocol 47: no L4 block at all
    assert (b[1, tcp] == -1).all() and (b[1, udp] >= 0).all() and (b[1, icmp] == -1).all()
    assert (b[2, tcp] == -1).all() and (b[2, udp] == -1).all() and (b[2, icmp] >= 0).all()
    assert (b[3, tcp.start :] == -1).all() and (b[3, : 5 * 32] >= 0).all()
    assert _value(b[1:2], "udp_dport")[0] == 0x3039


def test_mask_addresses_zeroes_both_addresses() -> None:
    t = _packet()
    plain, masked = packet_bits(t), packet_bits(t, mask_addresses=True)
    assert plain[0, IPV4_ADDR_SLICE].any()
    assert (masked[0, IPV4_ADDR_SLICE] == 0).all()
    keep = np.ones(1088, bool)
    keep[IPV4_ADDR_SLICE] = False
    assert np.array_equal(plain[0, keep], masked[0, keep])


def test_lossless_round_trip_on_real_captures(shared_data: Path) -> None:
    t = real_traffic(shared_data, IOT_FILES + NDPI_FILES)
    assert t.n_packets > 1000
    ip, l4, payload_len = bits_to_headers(packet_bits(t))
    assert np.array_equal(ip, t.ip)
    assert np.array_equal(l4, t.l4)
    assert np.array_equal(payload_len, t.payload_len)
    # the continuous path decodes the same
    f = packet_bits(t)[:3000].astype(np.float32) * 0.8
    ip2, l42, _ = bits_to_headers(f)
    assert np.array_equal(ip2, t.ip[:3000]) and np.array_equal(l42, t.l4[:3000])


def test_fields_agree_with_tshark(shared_data: Path) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    path = shared_data / IOT_FILES[0]
    if not path.exists():
        pytest.skip("sample capture missing")
    t, _ = read_capture(path)
    fields = ["ip.ttl", "ip.proto", "tcp.srcport", "tcp.hdr_len", "udp.dstport", "icmp.type"]
    cmd = [tshark, "-r", str(path), "-Y", "ip && (tcp || udp || icmp)", "-T", "fields"]
    cmd += ["-E", "occurrence=f"] + [x for f in fields for x in ("-e", f)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) == t.n_packets
    rows = [line.split("\t") for line in out]
    b = packet_bits(t)
    cols = np.array([[int(v) if v else -1 for v in r] for r in rows], np.int64)
    assert np.array_equal(_value(b, "ipv4_ttl"), cols[:, 0])
    assert np.array_equal(_value(b, "ipv4_proto"), cols[:, 1])
    tcp, udp, icmp = t.proto == 6, t.proto == 17, t.proto == 1
    assert tcp.any() and udp.any() and icmp.any()
    assert np.array_equal(_value(b[tcp], "tcp_sprt"), cols[tcp, 2])
    assert np.array_equal(_value(b[tcp], "tcp_doff") * 4, cols[tcp, 3])
    assert np.array_equal(_value(b[udp], "udp_dport"), cols[udp, 4])
    assert np.array_equal(_value(b[icmp], "icmp_type"), cols[icmp, 5])


# -- flow tensors -------------------------------------------------------------------------------


def test_encode_flows_layout_and_decode_back(shared_data: Path) -> None:
    t = assemble_flows(real_traffic(shared_data, IOT_FILES + NDPI_FILES))
    t.flow_label[:] = np.arange(t.n_flows) % 3
    t.classes = ["a", "b", "c"]
    max_packets = 16
    ft = encode_flows(t, max_packets=max_packets, mask_addresses=False)
    counts = np.bincount(t.flow, minlength=t.n_flows)
    assert ft.n_flows == int((counts > 0).sum())
    assert ft.truncated == int((counts > max_packets).sum()) > 0
    assert np.array_equal(ft.lengths, np.minimum(counts[ft.flow_id], max_packets))
    assert np.array_equal(ft.label, t.flow_label[ft.flow_id])

    # reference: each flow's first packets in time order
    order = np.lexsort((np.arange(t.n_packets), t.ts_ns, t.flow))
    s_flow = t.flow[order]
    first = np.r_[True, s_flow[1:] != s_flow[:-1]]
    start_idx = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    rank = np.arange(len(order)) - start_idx
    ref = order[rank < max_packets]
    assert np.array_equal(ft.packet_bits(), packet_bits(t.take(ref)))
    assert np.array_equal(ft.direction, np.where(t.direction[ref] == 0, 1, -1))
    gap = np.diff(t.ts_ns[ref], prepend=t.ts_ns[ref][0])
    gap[rank[rank < max_packets] == 0] = 0
    assert np.allclose(ft.iat, np.log1p(gap / 1000.0) / IAT_SCALE, atol=1e-6)

    # decode: same packets, directions, labels; timestamps within float32 precision
    d = decode_flows(ft)
    assert d.n_packets == ft.n_packets and d.n_flows == ft.n_flows
    assert d.classes == t.classes and np.array_equal(d.flow_label, ft.label)
    dord = np.lexsort((np.arange(d.n_packets), d.ts_ns, d.flow))
    assert np.array_equal(d.ip[dord], t.ip[ref])
    assert np.array_equal(d.l4[dord], t.l4[ref])
    assert np.array_equal(d.direction[dord], t.direction[ref])
    offset = t.ts_ns[ref] - ft.start_ns[d.flow[dord]]
    assert np.all(np.abs(d.ts_ns[dord] - t.ts_ns[ref]) <= 1e-5 * offset + 2000)
    assert np.all(np.diff(d.ts_ns) >= 0)


def test_features_padding_and_noisy_decode(shared_data: Path) -> None:
    t = assemble_flows(real_traffic(shared_data, NDPI_FILES[:3]))
    ft = encode_flows(t, max_packets=8)
    x = ft.features(np.arange(min(ft.n_flows, 200)))
    assert x.dtype == np.float32 and x.shape[1:] == (8, N_FEATURES)
    bits, _direction, iat, mask = ft.dense(np.arange(len(x)))
    assert np.array_equal(x[..., :1088], bits) and np.array_equal(x[..., IAT_FEATURE], iat)
    assert (x[~mask][:, :1088] == -1).all() and (x[~mask][:, DIRECTION_FEATURE] == 0).all()
    assert np.array_equal(mask.sum(1), ft.lengths[: len(x)])
    # addresses masked by default
    assert (x[mask][:, IPV4_ADDR_SLICE] == 0).all()

    rng = np.random.default_rng(0)
    noisy = x + rng.uniform(-0.4, 0.4, x.shape).astype(np.float32)
    noisy[..., IAT_FEATURE] = x[..., IAT_FEATURE]
    d = decode_flows(noisy)  # padding found from the all -1 slots
    assert d.n_packets == int(mask.sum())
    ref = decode_flows(ft)
    keep = np.isin(ref.flow, np.arange(len(x)))
    ref_rows = np.lexsort((ref.ts_ns[keep], ref.flow[keep]))
    got_rows = np.lexsort((d.ts_ns, d.flow))
    assert np.array_equal(d.ip[got_rows], ref.ip[keep][ref_rows])
    assert np.array_equal(d.l4[got_rows], ref.l4[keep][ref_rows])


def test_decode_of_arbitrary_model_output_is_consistent() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1.2, (50, 12, N_FEATURES)).astype(np.float32)
    d = decode_flows(x, mask=np.ones((50, 12), bool))
    assert d.n_packets == 600
    ihl = d.ip[:, 0] & 0x0F
    assert ((ihl >= 5) & (ihl <= 15)).all()
    assert (d.payload_len >= 0).all()
    tcp = d.proto == 6
    assert ((d.l4[tcp, 12] >> 4) >= 5).all()
    # bytes beyond the chosen header lengths are zero
    assert all((d.ip[i, ihl[i] * 4 :] == 0).all() for i in range(0, 600, 37))
    assert np.all(np.diff(d.ts_ns) >= 0)
    with pytest.raises(EncodingError):
        decode_flows(np.zeros((2, 3, 5), np.float32))


def test_encode_requires_flows() -> None:
    t = _packet()
    with pytest.raises(EncodingError, match="assemble flows"):
        encode_flows(t, max_packets=4)
    with pytest.raises(EncodingError):
        encode_flows(assemble_flows(t), max_packets=0)


def test_iat_transform_round_trip() -> None:
    gaps = np.array([0, 1, 999, 1000, 1_500_000, 60_000_000_000, -5], np.int64)
    back = iat_from_feature(iat_to_feature(gaps))
    assert back[-1] == 0 and back[0] == 0
    assert np.all(np.abs(back[:-1] - gaps[:-1]) <= np.maximum(2e-6 * gaps[:-1], 1000))
