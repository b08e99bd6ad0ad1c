"""`netdiffusion repair` against tcprewrite --fixcsum's output: the same IPv4/TCP/UDP checksums."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner

from netdiffusion.capture import read_capture
from netdiffusion.checksum import checksum_ok
from netdiffusion.cli import main


def test_repair_matches_tcprewrite_fixcsum(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "tcpreplay" / "test.pcap"
    oracle, _ = read_capture(shared_data / "tcpreplay" / "test.rewrite_fixcsum")
    out = tmp_path / "fixed.pcap"
    result = CliRunner().invoke(main, ["repair", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    ours, _ = read_capture(out)
    original, _ = read_capture(src)
    # tcprewrite sums only the captured bytes of snapped packets; we fill them first, so compare
    # the packets captured whole
    whole = original.held_payload_len == original.payload_len
    assert whole.sum() >= 0.9 * original.n_packets
    oracle = oracle.take(whole)
    ours = ours.take(whole)
    # match packets by timestamp and IP ID
    key_o = oracle.ts_ns * 65536 + oracle.ip[:, 4].astype(np.int64) * 256 + oracle.ip[:, 5]
    key_u = ours.ts_ns * 65536 + ours.ip[:, 4].astype(np.int64) * 256 + ours.ip[:, 5]
    common, io, iu = np.intersect1d(key_o, key_u, return_indices=True)
    assert len(common) >= 0.95 * oracle.n_packets
    proto = oracle.proto[io]
    # tcprewrite --fixcsum fixes IPv4 TCP and UDP packets (it leaves ICMP packets alone)
    for p, off in ((6, 16), (17, 6)):
        rows = proto == p
        assert rows.any()
        assert np.array_equal(oracle.ip[io][rows, 10:12], ours.ip[iu][rows, 10:12]), p
        assert np.array_equal(
            oracle.l4[io][rows, off : off + 2], ours.l4[iu][rows, off : off + 2]
        ), p
    # and our ICMP packets come out valid too
    ok = checksum_ok(ours)
    assert ok["ip"].all() and ok["l4"].all()
