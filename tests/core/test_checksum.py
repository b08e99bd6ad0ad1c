"""Vectorized checksums vs a per-packet reference, tshark's verdicts and tcprewrite --fixcsum."""

from __future__ import annotations

import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netdiffusion import Traffic
from netdiffusion.checksum import (
    checksum_ok,
    fill_checksums,
    ipv4_header_checksums,
    l4_checksums,
    ones_complement_rows,
)
from tests.core.repair._repair_testlib import read_pcap


def _ref_csum(data: bytes) -> int:
    """Plain RFC 1071 reference, one word at a time."""
    if len(data) % 2:
        data += b"\0"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=41), min_size=1, max_size=20))
def test_rows_match_reference(rows: list[bytes]) -> None:
    width = 41
    data = np.zeros((len(rows), width), np.uint8)
    for i, r in enumerate(rows):
        data[i, : len(r)] = np.frombuffer(r, np.uint8)
    data[:, :] |= 0  # bytes beyond each length are zero; put noise there to test masking
    noisy = data.copy()
    lengths = np.array([len(r) for r in rows])
    for i, n in enumerate(lengths):
        noisy[i, n:] = 0xAB
    got = ones_complement_rows(noisy, lengths)
    assert got.tolist() == [_ref_csum(r) for r in rows]


def _random_traffic(rng: np.random.Generator, n: int) -> Traffic:
    """Random IPv4 TCP/UDP/ICMP packets with random payloads laid out at random (odd) offsets."""
    t = Traffic.empty(n)
    proto = rng.choice([1, 6, 17], n)
    t.ip[:, :20] = rng.integers(0, 256, (n, 20), dtype=np.uint8)
    t.ip[:, 0] = 0x45
    t.ip[:, 6:8] = 0
    t.ip[:, 9] = proto
    t.l4[:] = rng.integers(0, 256, t.l4.shape, dtype=np.uint8)
    doff = rng.integers(5, 16, n)
    t.l4[:, 12] = np.where(proto == 6, (doff << 4) | (t.l4[:, 12] & 15), t.l4[:, 12])
    hl = t.l4_hdr_len
    t.l4[np.arange(60)[None, :] >= hl[:, None]] = 0
    t.payload_len[:] = rng.integers(0, 70, n)
    # a leading odd junk byte makes some packets start at odd buffer offsets
    lens = t.payload_len.astype(np.int64)
    gaps = rng.integers(0, 2, n)
    starts = np.cumsum(np.concatenate([[0], lens[:-1] + gaps[1:]])) + gaps[0]
    buf = rng.integers(0, 256, int(starts[-1] + lens[-1] + 1), dtype=np.uint8)
    # rebuild a contiguous ragged buffer from those (possibly odd) starts
    pieces = [buf[s : s + m] for s, m in zip(starts, lens, strict=True)]
    t.payload = np.concatenate([np.zeros(1, np.uint8), *pieces])
    t.payload_off = np.concatenate([[1], 1 + np.cumsum(lens)]).astype(np.int64)
    return t


def _ref_l4(t: Traffic, i: int) -> int:
    proto = int(t.ip[i, 9])
    hl = int(t.l4_hdr_len[i])
    hdr = bytearray(t.l4[i, :hl].tobytes())
    col = {6: 16, 17: 6, 1: 2}[proto]
    hdr[col : col + 2] = b"\0\0"
    body = bytes(hdr) + t.payload_of(i)
    if proto != 1:
        ln = len(body)
        body = t.ip[i, 12:20].tobytes() + bytes([0, proto, ln >> 8, ln & 255]) + body
    c = _ref_csum(body)
    return 0xFFFF if (c == 0 and proto == 17) else c


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40))
def test_l4_and_ip_match_reference(seed: int, n: int) -> None:
    t = _random_traffic(np.random.default_rng(seed), n)
    csum, ok = l4_checksums(t)
    assert ok.all()
    assert csum.tolist() == [_ref_l4(t, i) for i in range(n)]
    ipc = ipv4_header_checksums(t.ip)
    for i in range(n):
        h = bytearray(t.ip[i, :20].tobytes())
        h[10:12] = b"\0\0"
        assert ipc[i] == _ref_csum(bytes(h))
    filled = fill_checksums(t)
    verdict = checksum_ok(filled)
    assert verdict["ip"].all() and verdict["l4"].all() and verdict["l4_checked"].all()
    # a flipped payload bit is caught
    if t.payload_len.sum() > 0:
        j = int(np.flatnonzero(t.payload_len > 0)[0])
        filled.payload[filled.payload_off[j]] ^= 0x10
        assert not checksum_ok(filled)["l4"][j]


def test_short_payload_is_unchecked() -> None:
    t = _random_traffic(np.random.default_rng(1), 4)
    t.payload_len[0] += 5  # holds fewer bytes than on the wire
    t.ip[0, 9] = 6
    _, ok = l4_checksums(t)
    assert ok.tolist() == [False, True, True, True]
    before = t.l4[0].copy()
    assert (fill_checksums(t).l4[0] == before).all()
    assert checksum_ok(t)["l4"][0] and not checksum_ok(t)["l4_checked"][0]


def test_fixcsum_oracle(shared_data: Path) -> None:
    """Our fill equals what tcprewrite --fixcsum wrote for every TCP/UDP packet (IP and L4)."""
    d = shared_data / "tcpreplay"
    orig = read_pcap(d / "test.pcap")
    fixed = read_pcap(d / "test.rewrite_fixcsum")
    assert orig.n_packets == fixed.n_packets > 100
    ours = fill_checksums(orig)
    tcp_udp = np.isin(orig.proto, [6, 17])
    assert tcp_udp.sum() > 100
    assert (ours.ip[tcp_udp] == fixed.ip[tcp_udp]).all()
    assert (ours.l4[tcp_udp] == fixed.l4[tcp_udp]).all()
    # the original has bad checksums that we detect and fix
    before = checksum_ok(orig)
    assert (~before["l4"]).sum() >= 2
    after = checksum_ok(ours)
    assert after["ip"].all() and after["l4"].all()


def _tshark_verdicts(path: Path) -> dict[tuple[int, int], tuple[int, int]]:
    """(ts_ns, ip.id) -> (ip status, l4 status) with 0 bad, 1 good, 3 not present."""
    tshark = _require("tshark")
    out = subprocess.run(
        [tshark, "-r", str(path), "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
         "-o", "udp.check_checksum:TRUE", "-T", "fields", "-E", "occurrence=f",
         "-e", "frame.time_epoch", "-e", "ip.id", "-e", "ip.proto", "-e", "ip.checksum.status",
         "-e", "tcp.checksum.status", "-e", "udp.checksum.status", "-e", "icmp.checksum.status",
         "-Y", "ip && (tcp || udp || icmp) && ip.flags.mf == 0 && ip.frag_offset == 0"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    res = {}
    for line in out.splitlines():
        ts, ipid, proto, ips, *l4 = line.split("\t")
        l4s = int(l4[{"6": 0, "17": 1, "1": 2}[proto]])
        res[(int(Decimal(ts) * 10**9), int(ipid, 16))] = (int(ips), l4s)
    return res


@pytest.mark.parametrize(
    "rel",
    ["tcpreplay/test.pcap", "iot-sentinel/captures/HueBridge/Setup-A-3-STA.pcap"],
)
def test_tshark_agrees(shared_data: Path, rel: str) -> None:
    path = shared_data / rel
    if not path.exists():
        pytest.skip(f"{path} missing")
    t = read_pcap(path)
    verdicts = _tshark_verdicts(path)
    ok = checksum_ok(t)
    ipid = (t.ip[:, 4].astype(int) << 8) | t.ip[:, 5]
    compared = bad = 0
    for i in range(t.n_packets):
        v = verdicts.get((int(t.ts_ns[i]), int(ipid[i])))
        if v is None:
            continue
        compared += 1
        assert ok["ip"][i] == (v[0] == 1), i
        assert ok["l4"][i] == (v[1] in (1, 3)), i
        bad += v[1] == 0
    assert compared >= 0.9 * t.n_packets > 50
    assert bad == (~ok["l4"]).sum()


def test_all_zero_icmp_message_gets_checksum_ffff() -> None:
    """An ICMP echo reply with id, seq and payload all zero sums to zero: its checksum is ~0."""
    from tests.packets import Pkt, make_traffic

    t = make_traffic([Pkt(0.0, "10.0.0.1", "10.0.0.2", proto=1, icmp_type=0)])
    t.l4[0, 2:4] = [0x12, 0x34]  # whatever was there
    out = fill_checksums(t)
    assert out.l4[0, 2:4].tolist() == [0xFF, 0xFF]
    assert checksum_ok(out)["l4"].all()
