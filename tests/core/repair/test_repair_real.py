"""Repair of real captures: defects fixed and counted, everything else byte-identical."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netdiffusion import Traffic
from netdiffusion.checksum import checksum_ok
from netdiffusion.repair import repair
from tests.core.repair._repair_testlib import assemble_flows, read_pcap, write_pcap
from tests.tshark import verdicts

CSUM_COLS = {6: (16, 18), 17: (6, 8), 1: (2, 4)}


def _read_all(paths: list[Path]) -> Traffic:
    try:
        from netdiffusion.capture import read_captures
    except ImportError:
        return assemble_flows(Traffic.concat([read_pcap(p) for p in paths]))
    traffic, _ = read_captures(paths)
    return assemble_flows(traffic)


def _assert_only_checksums_changed(before: Traffic, after: Traffic) -> np.ndarray:
    """Returns the packets whose L4 checksum changed; asserts nothing else did."""
    for col in ("mac", "flow", "direction"):
        assert np.array_equal(getattr(before, col), getattr(after, col)), col
    _assert_payload_kept(before, after)
    return _l4_changes(before, after)


def _assert_payload_kept(before: Traffic, after: Traffic) -> None:
    """Timestamps and lengths equal, held payload bytes kept, snapped payloads completed."""
    for col in ("ts_ns", "payload_len"):
        assert np.array_equal(getattr(before, col), getattr(after, col)), col
    # held payload bytes are kept; bytes a snapped capture lacked are filled to payload_len
    assert np.array_equal(after.held_payload_len, after.payload_len)
    held = before.held_payload_len
    src = np.repeat(before.payload_off[:-1], held) + _ranks(held)
    dst = np.repeat(after.payload_off[:-1], held) + _ranks(held)
    assert np.array_equal(before.payload[src], after.payload[dst])


def _l4_changes(before: Traffic, after: Traffic) -> np.ndarray:
    """Packets whose L4 header changed; asserts only checksums did."""
    ip_diff = before.ip != after.ip
    ip_diff[:, 10:12] = False
    assert not ip_diff.any()
    l4_diff = before.l4 != after.l4
    changed = l4_diff.any(axis=1)
    for p, (a, b) in CSUM_COLS.items():
        rows = before.proto == p
        l4_diff[rows, a:b] = False
    assert not l4_diff.any()
    return changed


def _ranks(lengths: np.ndarray) -> np.ndarray:
    """0..len-1 for each length, concatenated."""
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(int(lengths.sum())) - starts


@pytest.fixture(scope="module")
def iot(shared_data: Path) -> Traffic:
    paths = sorted((shared_data / "iot-sentinel" / "captures").glob("*/*.pcap"))
    if not paths:
        pytest.skip("no IoT captures")
    return _read_all(paths)


def test_iot_set_identical_but_wrong_checksums(iot: Traffic) -> None:
    assert iot.n_packets > 100_000
    before_ok = checksum_ok(iot)
    out, report = repair(iot, synthetic=False)
    changed = _assert_only_checksums_changed(iot, out)
    # exactly the packets whose checksum was wrong (or could not be checked, being snapped and
    # now filled) changed, and nothing else was "fixed"
    snapped = iot.held_payload_len < iot.payload_len
    assert not (changed & before_ok["l4"] & ~snapped).any()
    assert (changed | snapped)[~before_ok["l4"]].all()
    assert report.fixed.get("payload_filled", 0) == int(snapped.sum())
    assert np.array_equal(iot.ip, out.ip) and before_ok["ip"].all()
    assert set(report.fixed) <= {"udp_checksum", "tcp_checksum", "payload_filled"}
    wrong_udp = int((~before_ok["l4"] & (iot.proto == 17)).sum())
    snapped_udp = int((snapped & (iot.proto == 17)).sum())
    assert wrong_udp <= report.fixed["udp_checksum"] <= wrong_udp + snapped_udp
    assert wrong_udp > 0.1 * int((iot.proto == 17).sum())
    assert report.fixed.get("tcp_checksum", 0) < 10  # a handful of TCP ones, checked by tshark
    after = checksum_ok(out)
    assert after["ip"].all() and after["l4"].all()
    assert report.unfixed.get("ts_backwards", 0) > 0  # real timing left as it was
    _, report2 = repair(out, synthetic=False)
    assert report2.fixed == {}


def test_repaired_real_file_passes_tshark(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "iot-sentinel" / "captures" / "WeMoLink" / "Setup-A-5-STA.pcap"
    if not path.exists():
        pytest.skip(f"{path} missing")
    t = _read_all([path])
    out, report = repair(t, synthetic=False)
    assert report.fixed.get("tcp_checksum", 0) >= 1 and report.fixed.get("udp_checksum", 0) >= 1
    before, after = tmp_path / "before.pcap", tmp_path / "after.pcap"
    write_pcap(t, before)
    write_pcap(out, after)
    v0, v1 = verdicts(before), verdicts(after)
    assert v0.bad_checksums == report.fixed["tcp_checksum"] + report.fixed["udp_checksum"]
    assert v1.bad_checksums == 0
    assert v1.packets == v0.packets


def test_tcpreplay_fixcsum_oracle(shared_data: Path) -> None:
    d = shared_data / "tcpreplay"
    t = _read_all([d / "test.pcap"])
    oracle = read_pcap(d / "test.rewrite_fixcsum")
    out, report = repair(t, synthetic=False)
    assert out.n_packets == oracle.n_packets
    tu = np.isin(out.proto, (6, 17))
    assert np.array_equal(out.ip[tu], oracle.ip[tu])
    assert np.array_equal(out.l4[tu], oracle.l4[tu])
    assert report.fixed.get("tcp_checksum", 0) + report.fixed.get("udp_checksum", 0) >= 2


def test_ndpi_sample(shared_data: Path) -> None:
    paths = sorted((shared_data / "ndpi" / "pcap").glob("*"))[::12]
    if not paths:
        pytest.skip("no nDPI captures")
    try:
        from netdiffusion.capture import read_captures
    except ImportError:
        pytest.skip("needs the project's capture reader (mixed link types)")
    t, _ = read_captures(paths, skip_errors=True)
    t = assemble_flows(t)
    out, report = repair(t, synthetic=False)
    after = checksum_ok(out)
    assert after["ip"].all() and after["l4"].all()
    assert report.fixed.get("tcp_checksum", 0) > 0
    # only checksum, length and option bytes may change (and snapped payloads are completed)
    _assert_payload_kept(t, out)
    allowed = {"ip_checksum", "ip_total_length", "ip_options", "tcp_checksum", "tcp_options"}
    allowed |= {"payload_filled"}
    allowed |= {"udp_checksum", "udp_length", "icmp_checksum"}
    assert set(report.fixed) <= allowed, report.fixed


def test_injected_defects_are_fixed_and_counted(iot: Traffic) -> None:
    t = iot.take(np.arange(5000))
    t = t.copy()
    tcp = np.flatnonzero((t.proto == 6) & (t.l4[:, 12] >> 4 >= 8))[:3]
    udp = np.flatnonzero(t.proto == 17)[:3]
    t.ip[tcp[0], 2:4] = [0, 1]  # total length
    t.ip[udp[0], 8] ^= 0x55  # TTL changed without checksum update -> bad IP checksum
    t.l4[udp[1], 4:6] = [0xFF, 0xFF]  # UDP length
    t.l4[tcp[1], 20:22] = [2, 7]  # MSS with a wrong length
    out, report = repair(t, synthetic=False)
    assert report.fixed["ip_total_length"] == 1
    assert report.fixed["udp_length"] == 1
    assert report.fixed["tcp_options"] == 1
    assert report.fixed["ip_checksum"] == 1  # the TTL packet (the length fix restores its own)
    assert out.ip[udp[0], 8] == t.ip[udp[0], 8]  # the TTL itself is real and stays
    assert (out.l4[tcp[1], 20 : (out.l4[tcp[1], 12] >> 4) * 4] == 1).all()
    after = checksum_ok(out)
    assert after["ip"].all() and after["l4"].all()
    assert repair(out, synthetic=False)[1].fixed == {}
