"""tshark judges repaired noise: no bad checksums, no TCP analysis flags but retransmitted SYNs
of unanswered attempts, clean TCP state."""

from __future__ import annotations

import subprocess
from pathlib import Path

from netdiffusion.repair import repair
from tests.core.repair._checker import check
from tests.core.repair._repair_testlib import write_pcap
from tests.core.repair.test_repair_synthetic import noise_traffic
from tests.tshark import count, tcp_state_problems, tshark, verdicts

# Expert infos tshark attaches to valid traffic (connection events, not defects).
BENIGN = (
    "Connection reset (RST)",
    "Connection finish (FIN)",
    "This frame initiates the connection closing",
    "This frame undergoes the connection closing",
    "Connection establish request (SYN)",
    "Connection establish acknowledge (SYN+ACK)",
    # only on retransmitted SYNs of unanswered attempts (counted exactly below)
    "This frame is a (suspected) retransmission",
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
    # the only TCP-analysis flags: retransmitted SYNs of unanswered connection attempts (the
    # flows the noise gave no responder packet), as real clients retry a silent server
    syn_retx = "tcp.analysis.retransmission && tcp.flags == 0x002"
    assert v.tcp_analysis == count(pcap, syn_retx) == count(pcap, "tcp.analysis.flags")
    assert count(pcap, "tcp.analysis.flags && !(tcp.analysis.retransmission)") == 0
    # SNMP is disabled: its own conversations on port 161 (noise may pick it as a TCP service
    # port) split tshark's tcp.stream numbering mid-flow
    assert tcp_state_problems(pcap, extra=["--disable-protocol", "snmp"]) == []
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
