"""tshark as an independent judge of our pcaps: field extraction and verdict counts."""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

CHECKSUM_PREFS = [
    "-o",
    "ip.check_checksum:TRUE",
    "-o",
    "tcp.check_checksum:TRUE",
    "-o",
    "udp.check_checksum:TRUE",
]


def tshark() -> str:
    """Path of tshark, or skip the test."""
    path = shutil.which("tshark")
    if path is None:
        pytest.skip("tshark is not installed")
    return path


def fields(
    pcap: Path, names: list[str], display_filter: str | None = None, extra: list[str] | None = None
) -> list[list[str]]:
    """One row per packet (matching the filter) with the named fields as strings."""
    cmd = [
        tshark(),
        "-n",
        "-r",
        str(pcap),
        *CHECKSUM_PREFS,
        *(extra or []),
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=f",
    ]
    for name in names:
        cmd += ["-e", name]
    if display_filter:
        cmd += ["-Y", display_filter]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def count(pcap: Path, display_filter: str) -> int:
    """Packets matching a display filter (checksum validation on)."""
    return len(fields(pcap, ["frame.number"], display_filter))


@dataclass
class Verdicts:
    """Per-packet verdict counts."""

    packets: int
    malformed: int
    errors: int
    warnings: int
    tcp_analysis: int
    bad_checksums: int


def verdicts(pcap: Path) -> Verdicts:
    """What tshark thinks of every packet, counted."""
    rows = fields(
        pcap,
        [
            "frame.number",
            "_ws.malformed",
            "_ws.expert.severity",
            "tcp.analysis.flags",
            "ip.checksum.status",
            "tcp.checksum.status",
            "udp.checksum.status",
            "icmp.checksum.status",
        ],
        extra=["-E", "occurrence=a", "-E", "aggregator=,"],
    )
    malformed = errors = warnings = analysis = bad = 0
    for row in rows:
        row += [""] * (8 - len(row))
        sev = {int(s) for s in row[2].split(",") if s}
        malformed += bool(row[1])
        # severity: 8388608 = error, 6291456 = warning (epan/proto.h PI_ERROR / PI_WARN)
        errors += any(s >= 8388608 for s in sev)
        warnings += any(6291456 <= s < 8388608 for s in sev)
        analysis += bool(row[3])
        bad += any(v == "0" for col in row[4:8] for v in col.split(","))
    return Verdicts(len(rows), malformed, errors, warnings, analysis, bad)


def tcp_state_problems(pcap: Path, extra: Sequence[str] = ()) -> list[str]:
    """Independent TCP check from tshark's fields: handshake first, seq/ack arithmetic per flow
    (a stream of one retransmitted SYN, an unanswered attempt, is valid). ``extra``: more
    tshark arguments (e.g. ``--disable-protocol snmp``, whose own conversations on port 161
    split tshark's tcp.stream numbering mid-flow)."""
    rows = fields(
        pcap,
        [
            "tcp.stream",
            "ip.src",
            "tcp.srcport",
            "tcp.flags",
            "tcp.seq_raw",
            "tcp.ack_raw",
            "tcp.len",
        ],
        "tcp",
        extra=list(extra),
    )
    streams: dict[str, list[tuple[str, int, int, int, int]]] = defaultdict(list)
    for stream, src, sport, flags, seq, ack, length in rows:
        streams[stream].append((f"{src}:{sport}", int(flags, 16), int(seq), int(ack), int(length)))
    problems: list[str] = []
    for stream, pkts in streams.items():
        orig = pkts[0][0]
        if all(
            src == orig and flags & 0x17 == 0x02 and not length for src, flags, *_x, length in pkts
        ):
            # an unanswered connection attempt: one SYN retransmitted, the same ISN every time
            if len({seq for _s, _f, seq, _a, _l in pkts}) != 1:
                problems.append(f"stream {stream}: retransmitted SYNs with different ISNs")
            continue
        for i, (src, flags, *_rest) in enumerate(pkts[:3]):
            want_syn_ack = [(0x02, orig), (0x12, None), (0x10, orig)][i]
            from_orig = src == orig
            if flags & 0x12 != want_syn_ack[0] or from_orig != (i != 1):
                problems.append(f"stream {stream}: packet {i} flags {flags:#x}: not the handshake")
        nxt: dict[str, int] = {}
        ends: dict[str, set[int]] = defaultdict(set)  # where each side's segments ended
        last_ack: dict[str, int] = {}
        for i, (src, flags, seq, ack, length) in enumerate(pkts):
            if i >= 3 and flags & 0x02:
                problems.append(f"stream {stream}: SYN after the handshake at packet {i}")
            if src in nxt and seq != nxt[src]:
                problems.append(f"stream {stream}: packet {i} seq {seq} != expected {nxt[src]}")
            peer = [k for k in nxt if k != src]
            # an ACK acknowledges the end of one of the peer's segments, never going back (an
            # ACK per segment may trail the peer's latest one)
            if flags & 0x10 and peer and ack not in ends[peer[0]]:
                problems.append(f"stream {stream}: packet {i} ack {ack}: no peer segment ends here")
            elif flags & 0x10 and src in last_ack and (ack - last_ack[src]) % 2**32 >= 2**31:
                problems.append(f"stream {stream}: packet {i} ack {ack} goes back")
            if flags & 0x10:
                last_ack[src] = ack
            nxt[src] = (seq + length + bool(flags & 0x02) + bool(flags & 0x01)) % 2**32
            ends[src].add(nxt[src])
            if flags & 0x04 and i != len(pkts) - 1:
                problems.append(f"stream {stream}: packets after RST")
    return problems
