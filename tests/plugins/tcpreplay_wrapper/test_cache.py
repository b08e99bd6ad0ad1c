"""tcpprep caches: our writer against tcpprep's own files, roles from flows and subnets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from netdiffusion.flows import assemble_flows
from netdiffusion_tcpreplay import (
    C2S,
    NOSEND,
    S2C,
    ReplayError,
    build_cache,
    read_cache,
    write_cache,
)
from netdiffusion_tcpreplay._cache import cache_bytes, originator_sent
from tests.plugins.tcpreplay_wrapper._replaylib import require_tool


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 1019, 1020, 1021, 4099])
def test_round_trip(tmp_path: Path, n: int) -> None:
    rng = np.random.default_rng(n)
    direction = rng.choice(np.array([C2S, S2C, NOSEND], np.int8), size=n)
    path = write_cache(direction, tmp_path / "x.cache", comment="hello")
    back, comment = read_cache(path)
    assert comment == "hello"
    np.testing.assert_array_equal(back, direction)
    assert path.stat().st_size == 24 + 5 + (n + 3) // 4


def test_bit_layout() -> None:
    # packet 0: send on primary (bits 0-1 = 11), 1: secondary (10), 2: skip (00), 3: primary
    raw = cache_bytes(np.array([C2S, S2C, NOSEND, C2S]))
    assert raw[:24] == b"tcpprep\0" + b"04\0\0" + (4).to_bytes(8, "big") + b"\0\x04\0\0"
    assert raw[24:] == bytes([0b11_00_10_11])


def test_matches_tcpprep_cidr(generated, tmp_path: Path) -> None:
    """Our client-net cache holds exactly the bits tcpprep --cidr writes for our pcap."""
    tcpprep = require_tool("tcpprep")
    theirs = tmp_path / "theirs.cache"
    proc = subprocess.run(
        [tcpprep, "--cidr=10.0.0.0/16", "-i", str(generated.pcap), "-o", str(theirs)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    ours = build_cache(generated.pcap, tmp_path / "ours.cache", "client-net")
    want, _ = read_cache(theirs)
    got, _ = read_cache(ours.path)
    np.testing.assert_array_equal(got, want)
    n = generated.traffic.n_packets
    assert ours.packets == n and ours.client_to_server + ours.server_to_client == n
    assert 0 < ours.client_to_server < n
    # same data bytes, byte for byte (the comments differ)
    data = (n + 3) // 4
    assert ours.path.read_bytes()[-data:] == theirs.read_bytes()[-data:]
    # and tcpprep reads our file back: "Packet k -> Primary|Secondary" for every packet
    info = subprocess.run([tcpprep, "-I", str(ours.path)], capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    sides = [line.rsplit(" ", 1)[-1] for line in info.stdout.splitlines() if "->" in line]
    assert sides == ["Primary" if d == C2S else "Secondary" for d in got]


def test_flow_roles_are_the_originators(generated, tmp_path: Path) -> None:
    """roles=flows: each packet's side is its flow's direction; for generated traffic the
    originators are exactly the client subnet's hosts."""
    report = build_cache(generated.pcapng, tmp_path / "flows.cache", "flows")
    got, comment = read_cache(report.path)
    assert "roles=flows" in comment
    t = generated.traffic
    # the generator's own truth: its direction column (0 = originator)
    assert t.direction.any() and (t.direction == 0).any()
    np.testing.assert_array_equal(got, np.where(t.direction == 0, C2S, S2C))
    client = t.ip[:, 12] == 10  # generate's default client net 10.0.0.0/16
    np.testing.assert_array_equal(got == C2S, client)


def test_idle_split_keeps_roles(generated) -> None:
    """A TCP flow resumed after more than the 5-minute idle timeout, server first, keeps its
    client: assemble_flows alone would call the server the originator of the second part."""
    t = generated.traffic
    tcp_flows = np.unique(t.flow[(t.proto == 6) & (t.direction == 1) & ((t.l4[:, 13] & 2) == 0)])
    f = int(tcp_flows[0])
    rows = np.flatnonzero(t.flow == f)
    no_syn = (t.l4[rows, 13] & 0x02) == 0
    cut = np.flatnonzero((t.direction[rows] == 1) & no_syn)[0]  # first server packet, not SYN
    later = rows[cut:]
    moved = t.take(rows)
    moved.ts_ns[len(rows) - len(later) :] += 400 * 10**9
    assert assemble_flows(moved).direction[len(rows) - len(later)] == 0  # split, roles swapped
    np.testing.assert_array_equal(originator_sent(moved), moved.direction == 0)


def test_foreign_capture_uses_tcpprep(shared_data: Path, tmp_path: Path) -> None:
    require_tool("tcpprep")
    pcap = shared_data / "tcpreplay" / "test.pcap"
    report = build_cache(pcap, tmp_path / "auto.cache", "auto")
    assert report.command is not None and "--auto=bridge" in report.command
    got, _ = read_cache(report.path)
    assert len(got) == report.packets == 179  # every record, ARP and IPv6 included
    assert report.client_to_server and report.server_to_client
    flows = build_cache(pcap, tmp_path / "flows.cache", "flows")
    assert flows.packets == 179


def test_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cache"
    bad.write_bytes(b"not a cache at all, no, not at all")
    with pytest.raises(ReplayError, match="not a tcpprep cache"):
        read_cache(bad)
    with pytest.raises(ValueError, match="unknown roles"):
        build_cache(tmp_path / "x.pcap", tmp_path / "x.cache", "guess")
    with pytest.raises(ReplayError, match="no such file"):
        build_cache(tmp_path / "missing.pcap", tmp_path / "x.cache", "auto")
