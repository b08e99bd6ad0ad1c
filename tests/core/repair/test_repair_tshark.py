"""tshark judges repaired noise: no bad checksums, no TCP analysis flags, clean TCP state."""

from __future__ import annotations

import subprocess
from pathlib import Path

from netdiffusion.repair import repair
from tests.core.repair._checker import check
from tests.core.repair._repair_testlib import write_pcap
from tests.core.repair.test_repair_synthetic import noise_traffic
from tests.tshark import fields, tshark, verdicts

# Expert infos tshark attaches to valid traffic (connection events, not defects).
BENIGN = (
    "Connection reset (RST)",
    "Connection finish (FIN)",
    "This frame initiates the connection closing",
    "This frame undergoes the connection closing",
    "Connection establish request (SYN)",
    "Connection establish acknowledge (SYN+ACK)",
)


def test_noise_flows_pass_tshark(tmp_path: Path) -> None:
    t = noise_traffic(2024, 400, 20)
    out, _ = repair(t, synthetic=True, seed=1)
    assert check(out) == []
    pcap = tmp_path / "noise.pcap"
    write_pcap(out, pcap)
    v = verdicts(pcap)
    assert v.packets == out.n_packets > 3000
    assert v.bad_checksums == 0
    assert v.tcp_analysis == 0
    assert _tcp_state_problems(pcap) == []
    # expert infos raised by the IP/TCP/UDP/ICMP layers themselves (payload dissectors aside)
    out_text = subprocess.run(
        [tshark(), "-n", "-r", str(pcap), "-Y", "_ws.expert", "-T", "fields",
         "-e", "_ws.col.Protocol", "-e", "_ws.expert.message",
         "-E", "occurrence=a", "-E", "aggregator=|"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    odd = []
    for line in out_text.splitlines():
        layer, _, messages = line.partition("\t")
        if layer in ("TCP", "UDP", "ICMP", "IPv4"):
            odd += [m for m in messages.split("|") if m and not m.startswith(BENIGN)]
    assert odd == [], odd[:10]


def _tcp_state_problems(pcap: Path) -> list[str]:
    """Handshake first, seq/ack arithmetic per tshark TCP stream.

    SNMP is disabled: its dissector opens a conversation of its own on port 161, which splits
    tshark's tcp.stream numbering mid-flow (noise may pick 161 as a TCP service port).
    """
    rows = fields(
        pcap,
        ["tcp.stream", "tcp.srcport", "tcp.flags", "tcp.seq_raw", "tcp.ack_raw", "tcp.len"],
        "tcp",
        extra=["--disable-protocol", "snmp"],
    )
    streams: dict[str, list[list[int]]] = {}
    for stream, *vals in rows:
        streams.setdefault(stream, []).append([int(v, 0) for v in vals])
    problems = []
    for stream, pkts in streams.items():
        client = pkts[0][0]
        nxt: dict[int, int] = {}
        for i, (sport, flags, seq, ack, length) in enumerate(pkts):
            if i < 3 and (flags & 0x17, sport == client) != [(2, True), (18, False), (16, True)][i]:
                problems.append(f"stream {stream} packet {i}: not the handshake")
            if i >= 3 and flags & 0x02:
                problems.append(f"stream {stream} packet {i}: SYN after the handshake")
            if sport in nxt and seq != nxt[sport]:
                problems.append(f"stream {stream} packet {i}: seq")
            peer = [p for p in nxt if p != sport]
            if flags & 0x10 and peer and ack != nxt[peer[0]]:
                problems.append(f"stream {stream} packet {i}: ack")
            nxt[sport] = (seq + length + (flags & 2 > 0) + (flags & 1)) % 2**32
    return problems
