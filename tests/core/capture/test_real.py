"""The capture reader on real captures: per-format and per-link-type files, tshark, labels."""

from __future__ import annotations

import csv
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from netdiffusion.capture import (
    CaptureError,
    ReadReport,
    iter_capture,
    iter_captures,
    read_capture,
    read_captures,
)


def _tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.skip("tshark is not installed")
    return path


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


# (file under shared data, link type, format, gzip)
REAL_FILES = [
    ("iot-sentinel/captures/Aria/Setup-A-1-STA.pcap", 1, "pcap", False),
    ("ndpi/pcap/dns2tcp_tunnel.pcap", 113, "pcap", False),
    ("ndpi/pcap/ocs.pcap", 101, "pcap", False),
    ("ndpi/pcap/pgsql2.pcapng", 0, "pcapng", False),
    ("ndpi/pcap/http2.pcapng", 113, "pcapng", False),
    ("ndpi/pcap/ossfuzz_seed_fake_traces_1.pcapng", 228, "pcapng", False),
    ("ndpi/pcap/nfsv2.pcap", 1, "pcap", False),  # big-endian
    ("ndpi/pcap/dlt_ppp.pcap", 9, "pcap", False),
    ("zeek-baselines/Traces/pcapng-multi-interface.pcapng", 1, "pcapng", False),
    ("odd-inputs/netflowv9.pcap", 1, "pcap", False),  # nanosecond
    ("odd-inputs/http_chunk.pcap.gz", 1, "pcap", True),
    ("odd-inputs/http_head.pcapng.gz", 1, "pcapng", True),
    ("odd-inputs/pfcp.pcap", 101, "pcapng", False),  # a pcapng named .pcap
]

TSHARK_FIELDS = [
    "frame.time_epoch",
    "ip.id",
    "ip.checksum",
    "ip.ttl",
    "ip.len",
    "ip.src",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "udp.length",
    "icmp.type",
]
# what the reader keeps, said in tshark's words (first IPv4 header, TCP/UDP/ICMP, first fragment)
TSHARK_FILTER = "ip and not ipv6 and (tcp or udp or icmp) and ip.frag_offset == 0"


@pytest.mark.parametrize(("name", "link_type", "fmt", "gz"), REAL_FILES)
def test_real_file_formats_and_link_types(
    shared_data: Path, name: str, link_type: int, fmt: str, gz: bool
) -> None:
    t, rep = read_capture(_need(shared_data / name))
    assert rep.format == fmt and rep.gzip == gz
    assert link_type in rep.link_types
    assert t.n_packets > 0 and rep.packets_kept == t.n_packets
    assert rep.packets_seen == t.n_packets + sum(rep.skipped.values())
    assert ((t.ip[:, 0] >> 4) == 4).all() and np.isin(t.proto, [1, 6, 17]).all()
    assert (t.held_payload_len <= t.payload_len).all() and (t.payload_len >= 0).all()
    assert not rep.warnings


def _tshark_rows(path: Path) -> list[list[str]]:
    cmd = [_tshark(), "-r", str(path), "-Y", TSHARK_FILTER, "-T", "fields", "-E", "occurrence=f"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    return [line.split("\t") for line in out.splitlines()]


def _be(a: np.ndarray, lo: int, hi: int) -> np.ndarray:
    out = np.zeros(len(a), np.int64)
    for k in range(lo, hi):
        out = (out << 8) | a[:, k]
    return out


@pytest.mark.parametrize(
    "name",
    [
        "iot-sentinel/captures/HueBridge/Setup-A-1-STA.pcap",
        "ndpi/pcap/dns2tcp_tunnel.pcap",
        "ndpi/pcap/ocs.pcap",
        "ndpi/pcap/pgsql2.pcapng",
        "ndpi/pcap/nfsv2.pcap",
        "zeek-baselines/Traces/pcapng-multi-interface.pcapng",
        "odd-inputs/netflowv9.pcap",
        "odd-inputs/http_chunk.pcap.gz",
    ],
)
def test_matches_tshark_byte_for_byte(shared_data: Path, name: str) -> None:
    path = _need(shared_data / name)
    rows = _tshark_rows(path)
    t, _ = read_capture(path)
    assert t.n_packets == len(rows) > 0
    col = {f: [r[i] for r in rows] for i, f in enumerate(TSHARK_FIELDS)}
    ns = [int(Decimal(v) * 10**9) for v in col["frame.time_epoch"]]
    assert t.ts_ns.tolist() == ns
    assert _be(t.ip, 4, 6).tolist() == [int(v, 16) for v in col["ip.id"]]
    assert _be(t.ip, 10, 12).tolist() == [int(v, 16) for v in col["ip.checksum"]]
    assert t.ip[:, 8].tolist() == [int(v) for v in col["ip.ttl"]]
    assert _be(t.ip, 2, 4).tolist() == [int(v) for v in col["ip.len"]]
    assert [".".join(map(str, r)) for r in t.ip[:, 12:16].tolist()] == col["ip.src"]
    tcp = t.proto == 6
    assert _be(t.l4, 4, 8)[tcp].tolist() == [
        int(v) for v, p in zip(col["tcp.seq_raw"], tcp, strict=True) if p
    ]
    assert _be(t.l4, 8, 12)[tcp].tolist() == [
        int(v) for v, p in zip(col["tcp.ack_raw"], tcp, strict=True) if p
    ]
    udp = t.proto == 17
    assert _be(t.l4, 4, 6)[udp].tolist() == [
        int(v) for v, p in zip(col["udp.length"], udp, strict=True) if p
    ]
    icmp = t.proto == 1
    assert t.l4[icmp, 0].tolist() == [
        int(v) for v, p in zip(col["icmp.type"], icmp, strict=True) if p
    ]


def test_ipv6_over_loopback_is_counted(shared_data: Path) -> None:
    t, rep = read_capture(_need(shared_data / "ndpi/pcap/openwire.pcapng"))
    assert rep.link_types == [0] and t.n_packets == 0
    assert rep.skipped == {"ipv6": rep.packets_seen} and rep.packets_seen > 0


def test_payload_bytes_match_tshark(shared_data: Path) -> None:
    path = _need(shared_data / "ndpi/pcap/dns2tcp_tunnel.pcap")
    cmd = [_tshark(), "-r", str(path), "-Y", TSHARK_FILTER, "-T", "fields"]
    cmd += ["-e", "tcp.payload", "-e", "udp.payload"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    expected = [
        bytes.fromhex("".join(line.split("\t")).replace(":", "")) for line in out.splitlines()
    ]
    t, _ = read_capture(path)
    assert [t.payload_of(i) for i in range(t.n_packets)] == expected
    assert sum(map(len, expected)) > 0


def test_counts_per_reason_match_the_labels(shared_data: Path) -> None:
    root = shared_data / "iot-sentinel"
    with (root / "labels.csv").open() as f:
        rows = list(csv.DictReader(f))[::17]  # a spread of devices
    assert len(rows) > 20
    for row in rows:
        t, rep = read_capture(root / row["file"])
        assert rep.packets_seen == int(row["packets"]), row["file"]
        assert int((t.proto == 6).sum()) == int(row["ipv4_tcp"]), row["file"]
        assert int((t.proto == 17).sum()) == int(row["ipv4_udp"]), row["file"]
        assert int((t.proto == 1).sum()) == int(row["ipv4_icmp"]), row["file"]
        assert rep.skipped.get("ipv6", 0) == int(row["ipv6"]), row["file"]
        assert rep.skipped.get("arp", 0) == int(row["arp"]), row["file"]
        other = sum(v for k, v in rep.skipped.items() if k not in ("ipv6", "arp"))
        assert other == int(row["other"]), row["file"]


def _odd_files(shared: Path) -> list[Path]:
    dirs = [shared / "odd-inputs", shared / "zeek-baselines" / "Traces"]
    return sorted(p for d in dirs for p in d.rglob("*") if p.is_file())


def test_every_odd_file_is_read_or_refused(shared_data: Path) -> None:
    files = _odd_files(shared_data)
    assert len(files) > 50
    read = refused = 0
    for path in files:
        rep = ReadReport()
        try:
            n = sum(c.n_packets for c in iter_capture(path, report=rep, chunk_packets=7))
        except CaptureError as err:
            refused += 1
            assert str(path) in str(err) and "\n" not in str(err)
            continue
        read += 1
        assert n == rep.packets_kept and rep.format in ("pcap", "pcapng"), path
    assert read > 40 and refused >= 2  # MANIFEST.tsv and the headerless pcapfix file


def test_pcapfix_and_dpkt_damage(shared_data: Path) -> None:
    odd = shared_data / "odd-inputs"
    with pytest.raises(CaptureError, match="unknown magic"):
        read_capture(_need(odd / "pcapfix/test_without_pcap_header.pcap"))
    for name, kept in [("pcapfix/test_damaged.pcap", 1), ("python3-dpkt/truncated_dns_2.pcap", 1)]:
        t, rep = read_capture(_need(odd / name))
        assert t.n_packets == kept and "stopped reading" in rep.warnings[0]
    t, rep = read_capture(_need(odd / "pcapfix/test.pcap"))
    assert t.n_packets == 28 and not rep.warnings


@pytest.mark.parametrize("batch", [16384, 64])  # 64: every file is decoded on its own
def test_many_files_read_together_equal_one_by_one(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    import netdiffusion.capture._reader as reader

    monkeypatch.setattr(reader, "_BATCH", batch)
    ndpi = shared_data / "ndpi" / "pcap"
    files = [_need(ndpi / n) for n in ("ocs.pcap", "README.txt", "openwire.pcapng", "nfsv2.pcap")]
    files.append(_need(shared_data / "iot-sentinel/captures/Aria/Setup-A-1-STA.pcap"))
    with pytest.raises(CaptureError, match="README"):
        read_captures(files)
    t, reports = read_captures(files, skip_errors=True)
    assert t.files == [str(f) for f in files]
    assert reports[1].error is not None and reports[1].packets_seen == 0
    chunks = list(iter_captures(files, chunk_packets=100, skip_errors=True))
    assert all(c.n_packets <= 100 for c in chunks)
    for i, f in enumerate(files):
        if i == 1:
            assert not (t.file == 1).any()
            continue
        one, rep = read_capture(f)
        mine = t.take(t.file == i)
        assert np.array_equal(mine.ts_ns, one.ts_ns) and np.array_equal(mine.ip, one.ip)
        assert np.array_equal(mine.l4, one.l4) and np.array_equal(mine.mac, one.mac)
        assert np.array_equal(mine.payload, one.payload)
        assert np.array_equal(mine.payload_len, one.payload_len)
        assert reports[i].skipped == rep.skipped and reports[i].packets_seen == rep.packets_seen
