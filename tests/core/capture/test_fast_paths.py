"""The reader's fast paths give what the general one gives.

Many small files are read whole into one arena and decoded where they lie, headers are gathered
from a compact copy of each record's first bytes, and decoded batches are written straight into
the chunk's columns. Each must match the plain per-file streaming read exactly.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from netdiffusion import Traffic
from netdiffusion.capture import (
    CaptureError,
    ReadReport,
    iter_capture,
    iter_captures,
    read_capture,
    read_captures,
)
from tests.core.capture._capgen import Rec, ether, ipv4, pcap, tcp, udp

_COLUMNS = ("ts_ns", "ip", "l4", "payload_len", "payload", "payload_off", "mac", "file")


def _one_by_one(paths: list[Path], payload_bytes: int | None) -> tuple[Traffic, list[ReadReport]]:
    """Each file read alone (the streaming path: no arena, no merging), then joined."""
    parts, reports = [], []
    for path in paths:
        rep = ReadReport(path=str(path))
        try:
            chunks = list(iter_capture(path, report=rep, payload_bytes=payload_bytes))
        except CaptureError as exc:  # refused, as a multi-file read records it
            rep.error = str(exc)
            chunks = []
        reports.append(rep)
        for chunk in chunks:
            chunk.file[:] = len(reports) - 1
            chunk.files = [str(p) for p in paths]
            parts.append(chunk)
    joined = Traffic.concat(parts)
    joined.files = [str(p) for p in paths]
    return joined, reports


def _assert_same(a: Traffic, b: Traffic) -> None:
    for name in _COLUMNS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y), name


def _sample(shared_data: Path) -> list[Path]:
    """A mix of real captures: small pcaps, pcapng, mixed link types, odd and damaged files."""
    iot = sorted((shared_data / "iot-sentinel" / "captures").rglob("*.pcap"))[:40]
    ndpi = sorted(p for p in (shared_data / "ndpi" / "pcap").rglob("*") if p.is_file())[:60]
    odd = sorted(p for p in (shared_data / "odd-inputs").rglob("*") if p.is_file())
    return iot + ndpi + odd


@pytest.mark.parametrize("payload_bytes", [0, None])
def test_merged_read_equals_reading_each_file_alone(shared_data: Path, payload_bytes) -> None:
    paths = _sample(shared_data)
    merged, reports = read_captures(paths, skip_errors=True, payload_bytes=payload_bytes)
    alone, alone_reports = _one_by_one(paths, payload_bytes)
    assert merged.n_packets == alone.n_packets > 10_000
    _assert_same(merged, alone)
    assert merged.files == [str(p) for p in paths]
    for got, want in zip(reports, alone_reports, strict=True):
        assert vars(got) == vars(want), got.path


def test_small_chunks_cut_merged_reads_exactly(shared_data: Path) -> None:
    paths = _sample(shared_data)[:60]
    whole, _ = read_captures(paths, skip_errors=True)
    chunks = list(iter_captures(paths, chunk_packets=1000, skip_errors=True))
    assert all(c.n_packets == 1000 for c in chunks[:-1]) and 0 < chunks[-1].n_packets <= 1000
    _assert_same(Traffic.concat(chunks), whole)


def _longest_headers(payload: bytes) -> bytes:
    """QinQ-tagged Ethernet, IPv4 with 40 option bytes (IHL 15), TCP with data offset 15."""
    ip_opts = bytes([1]) * 39 + bytes([0])
    tcp_opts = bytes([1]) * 39 + bytes([0])
    packet = ipv4(6, tcp(9, options=tcp_opts), payload, options=ip_opts)
    return ether(packet, tags=(0x88A8, 0x8100))


def test_headers_reaching_past_the_local_copy(tmp_path: Path) -> None:
    frames = [
        _longest_headers(b"LONG"),
        ether(ipv4(17, udp(3), b"abc")),
        _longest_headers(b"x" * 100),
    ]
    data = pcap([Rec(f) for f in frames])
    paths = []
    for i in range(3):  # small files: merged into the arena, read in place
        paths.append(tmp_path / f"f{i}.pcap")
        paths[-1].write_bytes(data)
    one, _ = read_capture(paths[0])
    merged, _ = read_captures(paths)
    assert one.n_packets == 3 and merged.n_packets == 9
    for t in (one, merged):
        for row in (0, 2):
            frame = frames[row]
            ip_at = 14 + 8
            assert t.ihl_bytes[row] == 60 and t.l4_hdr_len[row] == 60
            assert t.ip[row].tobytes() == frame[ip_at : ip_at + 60]
            assert t.l4[row].tobytes() == frame[ip_at + 60 : ip_at + 120]
            assert t.mac[row].tobytes() == frame[:12]
        assert t.payload_of(0) == b"LONG" and t.payload_of(2) == b"x" * 100
        assert t.l4[1, :8].tobytes() == struct.pack(">HHHH", 5353, 53, 11, 0)
        assert not t.l4[1, 8:].any() and not t.ip[1, 20:].any()
    assert merged.file.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for name in _COLUMNS[:-1]:
        got = getattr(merged, name)
        want = getattr(one, name)
        if name == "payload_off":
            assert np.array_equal(got[:4], want)
        elif name != "payload":
            assert np.array_equal(got[:3], want)


def test_damaged_small_files_among_sound_ones(tmp_path: Path) -> None:
    good = pcap([Rec(ether(ipv4(17, udp(2), b"ok"))) for _ in range(3)])
    cut = good[:-5]  # last record cut short
    huge = good[:24] + struct.pack("<IIII", 1, 0, 1 << 30, 60) + bytes(60)  # absurd caplen
    paths = []
    for name, data in [("a", good), ("b", cut), ("c", huge), ("d", b"\x00" * 30), ("e", good)]:
        paths.append(tmp_path / f"{name}.pcap")
        paths[-1].write_bytes(data)
    merged, reports = read_captures(paths, skip_errors=True)
    alone, alone_reports = _one_by_one(paths, None)
    _assert_same(merged, alone)
    assert [vars(r) for r in reports] == [vars(r) for r in alone_reports]
    assert merged.file.tolist() == [0, 0, 0, 1, 1, 4, 4, 4]
    assert "cut short" in reports[1].warnings[0] and "captured length" in reports[2].warnings[0]
    assert reports[3].error is not None and "unknown magic" in reports[3].error
