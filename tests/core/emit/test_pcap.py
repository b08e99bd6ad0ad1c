"""pcap / pcapng writers: bytes, timestamps, headers, comments, streaming and atomicity."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from netdiffusion import Traffic
from netdiffusion.emit import (
    EmitError,
    PcapWriter,
    fill_payloads,
    write_pcap,
    write_pcapng,
)
from netdiffusion.emit._synth import finish, random_traffic, synthetic_traffic
from tests.core.emit._emit_testlib import (
    expected_frames,
    read_pcap,
    read_pcapng,
    require_tool,
    tshark_fields,
)

CLASSES = ["Aria", "Hue Bridge", "TP-Link Plug"]


@pytest.fixture(scope="module")
def traffic() -> Traffic:
    """A few hundred valid packets: TCP, UDP, ICMP; labelled, unlabelled, and outside flows."""
    t = synthetic_traffic(
        [6, 6, 17, 17, 17, 1, 1, 6],
        [443, 80, 53, 123, 9999, 0, 0, 8883],
        [[120, 1400, 0, 700], [300, 900], [40, 90], [48, 48], [33], [56, 56], [28], [1] * 5],
        icmp_type=[8, 8, 8, 8, 8, 8, 3, 8],
        labels=[0, 1, 2, -1, 0, 1, 2, 0],
        classes=CLASSES,
        seed=7,
    )
    t = finish(t, seed=7)
    # Odd-nanosecond timestamps, a captured MAC row, and a packet outside any flow.
    t.ts_ns[:] += np.arange(t.n_packets) * 7 + 123
    t.mac[3] = np.arange(1, 13, dtype=np.uint8)
    t.flow[5] = -1
    return t


def test_pcap_frames_timestamps_and_header(traffic: Traffic, tmp_path: Path) -> None:
    for nano in (False, True):
        path = tmp_path / f"out{int(nano)}.pcap"
        report = write_pcap(traffic, path, nanosecond=nano)
        head, recs = read_pcap(path)
        assert head["magic"] == (0xA1B23C4D if nano else 0xA1B2C3D4)
        assert (head["major"], head["minor"], head["linktype"]) == (2, 4, 1)
        assert head["snaplen"] >= max(r.caplen for r in recs)
        assert report.packets == len(recs) == traffic.n_packets
        assert report.bytes == path.stat().st_size
        assert [r.data for r in recs] == expected_frames(traffic)
        assert all(r.caplen == r.origlen == len(r.data) for r in recs)
        frac = traffic.ts_ns % 10**9 if nano else (traffic.ts_ns % 10**9) // 1000
        assert [r.ts_sec for r in recs] == list(traffic.ts_ns // 10**9)
        assert [r.ts_frac for r in recs] == list(frac)


def test_pcapng_frames_comments_and_resolution(traffic: Traffic, tmp_path: Path) -> None:
    for nano in (False, True):
        path = tmp_path / f"out{int(nano)}.pcapng"
        write_pcapng(traffic, path, nanosecond=nano)
        head, recs = read_pcapng(path)
        assert head["linktype"] == 1
        assert head["tsresol"] == (9 if nano else 6)
        assert head["snaplen"] >= max(r.caplen for r in recs)
        assert [r.data for r in recs] == expected_frames(traffic)
        units = traffic.ts_ns if nano else traffic.ts_ns // 1000
        assert [r.ts_sec for r in recs] == list(units)
        for i, r in enumerate(recs):
            f = int(traffic.flow[i])
            label = int(traffic.flow_label[f]) if f >= 0 else -1
            name = traffic.classes[label] if label >= 0 else "unlabelled"
            assert r.comment == f"class={name} flow={f}"


def test_tshark_reads_pcap_exactly(traffic: Traffic, tmp_path: Path) -> None:
    require_tool("tshark")
    for nano in (False, True):
        path = tmp_path / "t.pcap"
        write_pcap(traffic, path, nanosecond=nano)
        rows = tshark_fields(path, "frame.time_epoch", "frame.len", "frame.cap_len", "eth.type")
        assert len(rows) == traffic.n_packets
        frames = expected_frames(traffic)
        for i, (epoch, flen, caplen, etype) in enumerate(rows):
            sec, frac = epoch.split(".")
            ns = int(traffic.ts_ns[i]) % 10**9
            want = ns if nano else ns // 1000 * 1000
            assert int(sec) == traffic.ts_ns[i] // 10**9
            assert int(frac.ljust(9, "0")) == want
            assert int(flen) == int(caplen) == len(frames[i])
            assert etype == "0x0800"  # dissected as Ethernet


def test_tshark_frame_bytes_match(traffic: Traffic, tmp_path: Path) -> None:
    path = tmp_path / "b.pcapng"
    write_pcapng(traffic, path, nanosecond=True)
    rows = tshark_fields(path, "frame.number", "frame.comment", "ip.src", "ip.dst")
    assert len(rows) == traffic.n_packets
    for i, (_n, comment, src, dst) in enumerate(rows):
        f = int(traffic.flow[i])
        label = int(traffic.flow_label[f]) if f >= 0 else -1
        name = traffic.classes[label] if label >= 0 else "unlabelled"
        assert comment == f"class={name} flow={f}"
        assert src.split(",")[0] == ".".join(str(b) for b in traffic.ip[i, 12:16])
        assert dst.split(",")[0] == ".".join(str(b) for b in traffic.ip[i, 16:20])
    aria = tshark_fields(path, "frame.number", display_filter='frame.comment contains "class=Aria"')
    labels = np.full(traffic.n_packets, -1)
    inflow = traffic.flow >= 0
    labels[inflow] = traffic.flow_label[traffic.flow[inflow]]
    assert len(aria) == int((labels == 0).sum()) > 0


def test_tcpcapinfo_accepts_output(traffic: Traffic, tmp_path: Path) -> None:
    tool = require_tool("tcpcapinfo")
    path = tmp_path / "r.pcap"
    write_pcap(traffic, path)
    res = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    rows = [ln for ln in res.stdout.splitlines() if ln[:1].isdigit()]
    assert len(rows) == traffic.n_packets
    assert all(ln.rstrip().endswith("OK") for ln in rows), rows[:5]


def test_macs_kept_or_derived(traffic: Traffic, tmp_path: Path) -> None:
    path = tmp_path / "m.pcap"
    report = write_pcap(traffic, path)
    _, recs = read_pcap(path)
    assert recs[3].data[:12] == bytes(range(1, 13))  # captured MACs are kept
    assert report.derived_macs == traffic.n_packets - 1
    by_ip: dict[bytes, bytes] = {}
    for i, r in enumerate(recs):
        if i == 3:
            continue
        dst, src = r.data[0:6], r.data[6:12]
        assert src[0] & 0x03 == 0x02  # locally administered unicast
        for mac, ip in ((src, traffic.ip[i, 12:16]), (dst, traffic.ip[i, 16:20])):
            assert by_ip.setdefault(ip.tobytes(), mac) == mac  # one MAC per host
    assert len(set(by_ip.values())) == len(by_ip)


def test_multicast_and_broadcast_destinations() -> None:
    from netdiffusion.emit.macs import mac_for_ip

    ips = np.array([[224, 0, 0, 251], [239, 255, 255, 250], [255, 255, 255, 255], [10, 0, 0, 1]])
    got = [bytes(m) for m in mac_for_ip(ips.astype(np.uint8), destination=True)]
    assert got[0] == bytes.fromhex("01005e0000fb")
    assert got[1] == bytes.fromhex("01005e7ffffa")
    assert got[2] == b"\xff" * 6
    assert got[3] == bytes.fromhex("024e0a000001")


def test_streaming_writer_matches_one_shot(tmp_path: Path) -> None:
    t = finish(random_traffic(3000, seed=2), seed=2)
    for pcapng in (False, True):
        one = tmp_path / f"one{pcapng}"
        many = tmp_path / f"many{pcapng}"
        (write_pcapng if pcapng else write_pcap)(t, one, nanosecond=True)
        with PcapWriter(many, pcapng=pcapng, nanosecond=True) as w:
            for lo in range(0, t.n_packets, 700):
                w.write(t.take(np.arange(lo, min(lo + 700, t.n_packets))))
        assert w.report is not None and w.report.packets == t.n_packets
        assert many.read_bytes() == one.read_bytes()


def test_snaplen_covers_every_frame(tmp_path: Path) -> None:
    t = finish(synthetic_traffic([6], [443], [[1400, 1400]]), seed=1)
    path = tmp_path / "s.pcap"
    report = write_pcap(t, path, snaplen=100)
    head, recs = read_pcap(path)
    assert head["snaplen"] == report.snaplen == max(r.caplen for r in recs) == 1454
    with PcapWriter(tmp_path / "s2.pcapng", pcapng=True, snaplen=64) as w:
        w.write(t)
    head, recs = read_pcapng(tmp_path / "s2.pcapng")
    assert head["snaplen"] == max(r.caplen for r in recs)


def _dir_entries(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}


def test_incomplete_payload_is_refused_atomically(tmp_path: Path) -> None:
    t = synthetic_traffic([17], [53], [[40, 80]])
    out = tmp_path / "x.pcap"
    out.write_bytes(b"previous")
    with pytest.raises(EmitError, match=r"x\.pcap: 2 packet\(s\) hold .*fill_payloads") as exc:
        write_pcap(t, out)
    assert "\n" not in str(exc.value)
    assert out.read_bytes() == b"previous"
    assert _dir_entries(tmp_path) == {"x.pcap"}
    write_pcap(fill_payloads(t), out)  # filled, it writes
    assert out.read_bytes()[:4] == b"\xd4\xc3\xb2\xa1"


def test_streaming_failure_midway_leaves_nothing(tmp_path: Path) -> None:
    good = finish(synthetic_traffic([17], [53], [[40, 80]]))
    bad = synthetic_traffic([17], [53], [[40]])
    out = tmp_path / "y.pcapng"
    with pytest.raises(EmitError), PcapWriter(out, pcapng=True) as w:
        w.write(good)
        w.write(bad)
    assert _dir_entries(tmp_path) == set()

    class Boom(Exception):
        pass

    with pytest.raises(Boom), PcapWriter(out) as w:
        w.write(good)
        raise Boom
    assert _dir_entries(tmp_path) == set()


def test_bad_inputs_give_one_line_errors(tmp_path: Path) -> None:
    t = finish(synthetic_traffic([6], [443], [[1400]]))
    big = t.copy()
    big.payload_len[:] = np.where(big.payload_len > 0, 1600, 0)
    big = fill_payloads(big.with_payload(np.zeros(0, np.uint8), np.zeros(len(big) + 1, np.int64)))
    with pytest.raises(EmitError, match="MTU of 1500"):
        write_pcap(big, tmp_path / "a.pcap")
    write_pcap(big, tmp_path / "a.pcap", mtu=None)
    neg = t.copy()
    neg.ts_ns[0] = -1
    with pytest.raises(EmitError, match="negative timestamps"):
        write_pcap(neg, tmp_path / "b.pcap")
    late = t.copy()
    late.ts_ns[-1] = 2**32 * 10**9
    with pytest.raises(EmitError, match="2106"):
        write_pcap(late, tmp_path / "c.pcap")
    write_pcapng(late, tmp_path / "c.pcapng")  # 64-bit timestamps fit
    with pytest.raises(EmitError, match="snaplen"):
        write_pcap(t, tmp_path / "d.pcap", snaplen=0)
    assert not (tmp_path / "b.pcap").exists()


def test_empty_traffic(tmp_path: Path) -> None:
    r = write_pcap(Traffic.empty(), tmp_path / "e.pcap")
    assert r.packets == 0 and (tmp_path / "e.pcap").stat().st_size == 24
    write_pcapng(Traffic.empty(), tmp_path / "e.pcapng")
    head, recs = read_pcapng(tmp_path / "e.pcapng")
    assert recs == [] and head["linktype"] == 1


def test_deterministic_output(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pcapng", tmp_path / "b.pcapng"
    write_pcapng(finish(random_traffic(500, seed=4), seed=9), a)
    write_pcapng(finish(random_traffic(500, seed=4), seed=9), b)
    assert a.read_bytes() == b.read_bytes()
    write_pcapng(finish(random_traffic(500, seed=4), seed=10), b)
    assert a.read_bytes() != b.read_bytes()


def test_out_of_order_is_reported(traffic: Traffic, tmp_path: Path) -> None:
    rev = traffic.take(np.arange(traffic.n_packets)[::-1])
    report = write_pcap(rev, tmp_path / "o.pcap")
    assert report.out_of_order == traffic.n_packets - 1
    _, recs = read_pcap(tmp_path / "o.pcap")
    assert [r.data for r in recs] == expected_frames(rev)  # row order is kept
