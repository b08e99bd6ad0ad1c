"""The capture reader on hand-packed captures: formats, byte orders, link types, skip reasons."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from netdiffusion.capture import CaptureError, ReadReport, iter_capture, read_capture
from tests.core.capture._capgen import (
    MAC_DST,
    MAC_SRC,
    Iface,
    Rec,
    Section,
    ether,
    icmp_echo,
    ipv4,
    pcap,
    pcapng,
    tcp,
    tcp_packet,
    udp,
)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _u16(row: np.ndarray, at: int) -> int:
    return int(row[at]) << 8 | int(row[at + 1])


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, order: str, nano: bool) -> None:
    frac = 999_999_999 if nano else 999_999
    recs = [
        Rec(ether(tcp_packet(b"abc", seq=0xDEADBEEF)), sec=1_700_000_000, frac=frac),
        Rec(ether(ipv4(17, udp(4), b"wxyz")), sec=4_000_000_000, frac=1),
    ]
    path = _write(tmp_path, "x.pcap", pcap(recs, order=order, nano=nano))
    t, rep = read_capture(path)
    assert rep.format == "pcap" and not rep.gzip and rep.link_types == [1]
    unit = 1 if nano else 1000
    assert t.ts_ns.tolist() == [
        1_700_000_000 * 10**9 + frac * unit,
        4_000_000_000 * 10**9 + unit,
    ]
    assert t.proto.tolist() == [6, 17]
    assert int.from_bytes(t.l4[0, 4:8].tobytes(), "big") == 0xDEADBEEF
    assert t.payload_of(0) == b"abc" and t.payload_of(1) == b"wxyz"
    assert t.payload_len.tolist() == [3, 4]
    assert t.mac[0].tobytes() == MAC_DST + MAC_SRC
    assert t.files == [str(path)] and t.file.tolist() == [0, 0] and t.flow.tolist() == [-1, -1]
    assert rep.packets_seen == rep.packets_kept == 2


def test_header_bytes_are_zero_beyond_their_length(tmp_path: Path) -> None:
    ip_opts = bytes([1, 1, 1, 0]) * 2  # IHL 7
    tcp_opts = bytes([2, 4, 5, 0xB4, 1, 3, 3, 7])  # data offset 7
    pkt = ipv4(6, tcp(5, options=tcp_opts), b"PAY", options=ip_opts)
    path = _write(tmp_path, "o.pcap", pcap([Rec(ether(pkt))]))
    t, _ = read_capture(path)
    assert t.ihl_bytes.tolist() == [28] and t.l4_hdr_len.tolist() == [28]
    assert t.ip[0, :28].tobytes() == pkt[:28] and not t.ip[0, 28:].any()
    assert t.l4[0, :28].tobytes() == pkt[28:56] and not t.l4[0, 28:].any()
    assert t.payload_of(0) == b"PAY"


def test_ethernet_padding_is_not_payload_and_snapped_payload_is_partial(tmp_path: Path) -> None:
    small = ether(ipv4(17, udp(2), b"hi"), pad_to=60)  # 14 + 30 bytes, padded to 60
    big = ether(tcp_packet(bytes(range(100))))
    recs = [Rec(small), Rec(big[:80], wire=len(big))]
    t, rep = read_capture(_write(tmp_path, "p.pcap", pcap(recs)))
    assert t.payload_len.tolist() == [2, 100]
    assert t.payload_of(0) == b"hi"
    assert t.payload_of(1) == bytes(range(26))  # 80 - 14 - 20 - 20 bytes captured
    assert t.held_payload_len.tolist() == [2, 26]
    assert not rep.skipped


@pytest.mark.parametrize("limit", [0, 5, 100])
def test_payload_bytes_limit(tmp_path: Path, limit: int) -> None:
    frames = [ether(tcp_packet(bytes(range(n)))) for n in (0, 3, 10, 60)]
    path = _write(tmp_path, "lim.pcap", pcap([Rec(f) for f in frames]))
    t, _ = read_capture(path, payload_bytes=limit)
    assert t.payload_len.tolist() == [0, 3, 10, 60]
    assert [t.payload_of(i) for i in range(4)] == [
        bytes(range(min(n, limit))) for n in (0, 3, 10, 60)
    ]


def test_vlan_qinq_pppoe_and_mpls(tmp_path: Path) -> None:
    ip = tcp_packet(b"x")
    pppoe = struct.pack(">BBHHH", 0x11, 0, 1, len(ip) + 2, 0x0021) + ip
    mpls = struct.pack(">I", (16 << 12) | 64) + struct.pack(">I", (17 << 12) | 0x100 | 64) + ip
    frames = [
        ether(ip, tags=(0x8100,)),
        ether(ip, tags=(0x88A8, 0x8100)),
        ether(ip, tags=(0x9100, 0x9100, 0x8100)),
        ether(pppoe, ethertype=0x8864, tags=(0x8100,)),
        ether(mpls, ethertype=0x8847),
        ether(b"\x60" + bytes(47), ethertype=0x86DD, tags=(0x8100,)),
    ]
    t, rep = read_capture(_write(tmp_path, "v.pcap", pcap([Rec(f) for f in frames])))
    assert t.n_packets == 5
    assert all(t.ip[i, :20].tobytes() == ip[:20] for i in range(5))
    assert all(t.payload_of(i) == b"x" for i in range(5))
    assert rep.skipped == {"ipv6": 1}


def _family(value: int, order: str) -> bytes:
    return struct.pack(order + "I", value)


@pytest.mark.parametrize(
    ("link_type", "frame"),
    [
        (101, b""),
        (228, b""),
        (12, b""),
        (14, b""),
        (113, struct.pack(">HHH8sH", 0, 1, 6, MAC_SRC + b"\0\0", 0x0800)),
        (276, struct.pack(">HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, MAC_SRC + b"\0\0")),
        (0, _family(2, "<")),
        (0, _family(2, ">")),
        (108, _family(2, ">")),
        (9, b"\xff\x03\x00\x21"),
        (104, b"\x0f\x00\x08\x00"),
    ],
)
def test_link_types(tmp_path: Path, link_type: int, frame: bytes) -> None:
    ip = tcp_packet(b"data")
    recs = [Rec(frame + ip), Rec(frame + ip)]
    t, rep = read_capture(_write(tmp_path, "l.pcap", pcap(recs, link_type=link_type)))
    assert rep.link_types == [link_type]
    assert t.n_packets == 2, rep.skipped
    assert t.ip[0, :20].tobytes() == ip[:20] and t.payload_of(1) == b"data"
    assert not t.mac.any()


def test_unsupported_link_type_is_a_skip_count(tmp_path: Path) -> None:
    path = _write(tmp_path, "u.pcap", pcap([Rec(b"\x00" * 40)] * 3, link_type=147))
    t, rep = read_capture(path)
    assert t.n_packets == 0 and rep.skipped == {"unsupported_link_type": 3}
    assert rep.packets_seen == 3


def test_skip_reasons(tmp_path: Path) -> None:
    good = tcp_packet(b"ok")
    frames = {
        "kept_tcp": ether(good),
        "kept_icmp": ether(ipv4(1, icmp_echo(), b"ping")),
        "kept_first_fragment": ether(ipv4(17, udp(100), b"z" * 40, frag=0x2000, total=68)),
        "ipv6": ether(b"\x60" + bytes(60), ethertype=0x86DD),
        "arp": ether(bytes(28), ethertype=0x0806),
        "non_ip": ether(bytes(46), ethertype=0x88CC),
        "ipv4_other_proto": ether(ipv4(47, bytes(4), b"gre")),
        "non_first_fragment": ether(ipv4(17, b"", b"rest", frag=0x0003)),
        "truncated_ip": ether(good)[: 14 + 12],
        "truncated_tcp": ether(good)[: 14 + 20 + 10],
        "bad_ihl": ether(ipv4(6, tcp(), b"", ihl=4)),
        "bad_total": ether(ipv4(6, tcp(), b"abc", total=30)),
        "bad_doff": ether(ipv4(6, tcp(doff=3), b"")),
        "bad_version": ether(b"\x65" + good[1:]),
    }
    t, rep = read_capture(_write(tmp_path, "s.pcap", pcap([Rec(f) for f in frames.values()])))
    assert t.n_packets == 3
    assert t.proto.tolist() == [6, 1, 17]
    assert t.payload_len.tolist() == [2, 4, 40]  # the first fragment: total length - headers
    assert rep.skipped == {
        "ipv6": 1,
        "arp": 1,
        "non_ip": 1,
        "ipv4_other_proto": 1,
        "non_first_fragment": 1,
        "truncated": 2,
        "bad_header": 4,
    }
    assert rep.packets_seen == len(frames) and rep.packets_kept == 3


def test_tso_total_length_zero_uses_the_frame_length(tmp_path: Path) -> None:
    pkt = bytearray(tcp_packet(b"q" * 1000))
    pkt[2:4] = b"\0\0"
    t, _ = read_capture(_write(tmp_path, "t.pcap", pcap([Rec(ether(bytes(pkt)))])))
    assert t.payload_len.tolist() == [1000] and t.held_payload_len.tolist() == [1000]


def test_pcapng_sections_interfaces_and_blocks(tmp_path: Path) -> None:
    ip = tcp_packet(b"one")
    raw = ipv4(17, udp(3), b"two")
    s1 = Section(
        "<",
        [Iface(1), Iface(101, tsresol=9), Iface(1, tsresol=0x80 | 20, tsoffset=100)],
    )
    s1.epb(0, 1_700_000_000_123_456, ether(ip))  # default resolution: microseconds
    s1.other(4)  # name resolution block
    s1.epb(1, 1_700_000_000_123_456_789, raw)  # nanoseconds
    s1.other(5, struct.pack("<III", 0, 0, 0))  # interface statistics
    s1.other(0xBAD, b"custom!!")
    s1.epb(2, (5 << 20) | (1 << 19), ether(ip))  # 5.5 s in 2^-20 units, +100 s offset
    s1.pb(0, 1_700_000_001_000_000, ether(ip))
    s1.epb(7, 1, ether(ip))  # no such interface
    s1.other(0x12345, b"\x01" * 12)  # unknown block
    s2 = Section(">", [Iface(113, snaplen=60)])
    sll = struct.pack(">HHH8sH", 0, 1, 6, MAC_SRC + b"\0\0", 0x0800)
    s2.spb(sll + tcp_packet(b"x" * 100))  # kept to the snaplen: 60 bytes captured
    s2.epb(0, 42, sll + raw)
    path = _write(tmp_path, "n.pcapng", pcapng(s1, s2))
    t, rep = read_capture(path)
    assert rep.format == "pcapng" and rep.link_types == [1, 101, 113]
    assert rep.skipped == {"unknown_interface": 1}
    assert t.n_packets == 6
    assert t.ts_ns.tolist() == [
        1_700_000_000_123_456_000,
        1_700_000_000_123_456_789,
        105_500_000_000,
        1_700_000_001_000_000_000,
        0,
        42_000,
    ]
    assert [t.payload_of(i) for i in range(6)] == [
        b"one",
        b"two",
        b"one",
        b"one",
        b"x" * (60 - 16 - 40),
        b"two",
    ]
    assert t.payload_len.tolist()[4] == 100
    assert any("no timestamp" in w for w in rep.warnings)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_gzip_is_detected_by_magic(tmp_path: Path, fmt: str) -> None:
    frame = ether(tcp_packet(b"zip"))
    data = (
        pcap([Rec(frame)]) if fmt == "pcap" else pcapng(Section("<", [Iface(1)]).epb(0, 5, frame))
    )
    path = _write(tmp_path, f"plain-name.{fmt}", gzip.compress(data))
    t, rep = read_capture(path)
    assert rep.gzip and rep.compression == "gzip" and rep.format == fmt
    assert t.payload_of(0) == b"zip"


def test_damaged_tails_keep_what_came_before(tmp_path: Path) -> None:
    frames = [ether(tcp_packet(bytes([i]) * 10)) for i in range(5)]
    whole = pcap([Rec(f) for f in frames])
    cut = _write(tmp_path, "cut.pcap", whole[:-7])
    t, rep = read_capture(cut)
    assert t.n_packets == 4 and len(rep.warnings) == 1
    assert "4 packets read before it" in rep.warnings[0]

    absurd = pcap([Rec(f) for f in frames[:2]]) + struct.pack("<IIII", 1, 2, 0xFFFFFF00, 60)
    t, rep = read_capture(_write(tmp_path, "absurd.pcap", absurd + bytes(100)))
    assert t.n_packets == 2 and "damaged record" in rep.warnings[0]

    sec = Section("<", [Iface(1)]).epb(0, 1, frames[0])
    zero = pcapng(sec) + struct.pack("<II", 6, 0) + bytes(64)
    t, rep = read_capture(_write(tmp_path, "zero.pcapng", zero))
    assert t.n_packets == 1 and "damaged block" in rep.warnings[0]

    bad_gz = gzip.compress(whole)[:-30]
    t, rep = read_capture(_write(tmp_path, "bad.pcap.gz", bad_gz))
    assert rep.warnings and t.n_packets <= 5


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"hello world, not a capture at all", "unknown magic"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "damaged header"),
        (b"\x0a\x0d\x0d\x0a" + bytes(40), "damaged pcapng"),
        (b"\x28\xb5\x2f\xfd" + bytes(40), "zstd"),
    ],
)
def test_refused_with_one_line(tmp_path: Path, data: bytes, reason: str) -> None:
    path = _write(tmp_path, "bad.pcap", data)
    with pytest.raises(CaptureError) as err:
        read_capture(path)
    assert reason in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file_and_directory_are_refused(tmp_path: Path) -> None:
    for path in (tmp_path / "nope.pcap", tmp_path):
        with pytest.raises(CaptureError, match=str(path)):
            read_capture(path)


def test_chunks_are_bounded_and_streaming_is_exact(tmp_path: Path, monkeypatch) -> None:
    import netdiffusion.capture._reader as reader

    rng = np.random.default_rng(7)
    n = 20000
    sizes = rng.integers(0, 1400, n)
    recs = [
        Rec(ether(tcp_packet(bytes([i % 251]) * int(s), seq=i)), sec=1000 + i, frac=i % 1000)
        for i, s in enumerate(sizes)
    ]
    path = _write(tmp_path, "big.pcap", pcap(recs))
    whole, rep = read_capture(path)
    assert whole.n_packets == n and rep.packets_kept == n
    monkeypatch.setattr(reader, "_BLOCK", 4096)  # records straddle many block boundaries
    monkeypatch.setattr(reader, "_BATCH", 3000)
    chunks = list(iter_capture(path, chunk_packets=1000))
    assert all(c.n_packets <= 1000 for c in chunks)
    assert sum(c.n_packets for c in chunks) == n
    seq = np.concatenate([c.l4[:, 4:8].copy().view(">u4").ravel() for c in chunks])
    assert (seq == np.arange(n)).all()
    assert np.array_equal(np.concatenate([c.ts_ns for c in chunks]), whole.ts_ns)
    held = np.concatenate([c.held_payload_len for c in chunks])
    assert np.array_equal(held, sizes)
    assert np.array_equal(np.concatenate([c.payload for c in chunks]), whole.payload)


def test_memory_stays_bounded_on_a_large_file(tmp_path: Path, monkeypatch) -> None:
    import tracemalloc

    import netdiffusion.capture._reader as reader

    frame = ether(tcp_packet(b"\xab" * 1400))
    one = struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame
    count = 30000  # ~43 MB
    path = tmp_path / "large.pcap"
    with path.open("wb") as f:
        f.write(pcap([]))
        for _ in range(count // 1000):
            f.write(one * 1000)
    monkeypatch.setattr(reader, "_BLOCK", 1 << 20)
    rep = ReadReport()
    tracemalloc.start()
    try:
        seen = 0
        for chunk in iter_capture(path, chunk_packets=500, report=rep):
            seen += chunk.n_packets
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == count == rep.packets_kept
    assert peak < path.stat().st_size / 4, f"peak {peak} bytes for a {path.stat().st_size} file"
