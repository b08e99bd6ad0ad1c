"""Protocol validity, measured the same way on real and synthetic traffic (like for like).

Three sources of verdicts (see ``docs/evaluation.md`` for each figure):

- our own checks (:func:`structural_figures`), vectorized over all packets: IPv4 header and L4
  checksums (:func:`netdiffusion.checksum.checksum_ok`), header lengths, TCP state per flow
  (handshake, sequence and acknowledgement numbers, SYN after data, packets after RST) and
  timestamps going backwards;
- tshark (:func:`tshark_rates`), when installed: per IPv4 packet, the share that is malformed,
  carries an expert error, an expert warning, a TCP-analysis flag or a bad checksum (checksum
  validation on);
- Zeek's connection semantics (:func:`zeek_states`) through ``netdiffusion_zeek``'s conn.log
  writer: the distribution of ``conn_state`` and ``history`` over connections.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import PROTO_TCP, PROTO_UDP, Traffic
from netdiffusion.checksum import checksum_ok

__all__ = [
    "TSHARK_PREFS",
    "distribution_jsd",
    "structural_figures",
    "tcp_state_figures",
    "tshark_rates",
    "zeek_states",
]

_SEV_ERROR, _SEV_WARN = 8388608, 6291456  # Wireshark's PI_ERROR / PI_WARN
#: tshark options: verify IPv4, TCP and UDP checksums.
TSHARK_PREFS = ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
                "-o", "udp.check_checksum:TRUE"]  # fmt: skip
_TSHARK_COLUMNS = ["_ws.malformed", "_ws.expert.severity", "tcp.analysis.flags",
                   "ip.checksum.status", "tcp.checksum.status", "udp.checksum.status",
                   "icmp.checksum.status", "_ws.expert.message"]  # fmt: skip
_U32 = np.int64(1 << 32)


def _be(a: NDArray[np.uint8], col: int, n: int) -> NDArray[np.int64]:
    out = np.zeros(len(a), np.int64)
    for k in range(n):
        out = (out << 8) | a[:, col + k]
    return out


def _rate(bad: NDArray[np.bool_], of: NDArray[np.bool_] | None = None) -> float:
    if of is not None:
        bad = bad[of]
    return float(bad.mean()) if len(bad) else float("nan")


def structural_figures(t: Traffic) -> dict[str, float]:
    """Our own per-packet checks, as rates (NaN where nothing could be checked):

    ``checksum.ip_bad_rate``, ``checksum.l4_bad_rate`` (of packets whose L4 checksum could be
    computed), ``checksum.l4_unverifiable_rate``; ``length.ip_header_bad_rate`` (version 4,
    IHL >= 5), ``length.ip_total_bad_rate`` (total length != IP header + L4 header + payload),
    ``length.udp_bad_rate`` (UDP length != 8 + payload), ``length.tcp_offset_bad_rate`` (data
    offset < 5); ``timestamps.backwards_rate`` (packets earlier than the previous packet of the
    same capture file); and :func:`tcp_state_figures` under ``tcp.``.
    """
    out: dict[str, float] = {}
    n = t.n_packets
    ok = checksum_ok(t)
    out["checksum.ip_bad_rate"] = _rate(~ok["ip"])
    out["checksum.l4_bad_rate"] = _rate(~ok["l4"], ok["l4_checked"])
    out["checksum.l4_unverifiable_rate"] = _rate(~ok["l4_checked"])
    version_ok = (t.ip[:, 0] >> 4 == 4) & (t.ihl_bytes >= 20)
    out["length.ip_header_bad_rate"] = _rate(~version_ok)
    total = _be(t.ip, 2, 2)
    want = t.ihl_bytes + t.l4_hdr_len + t.payload_len.astype(np.int64)
    out["length.ip_total_bad_rate"] = _rate(total != want)
    udp = t.proto == PROTO_UDP
    out["length.udp_bad_rate"] = _rate(_be(t.l4, 4, 2) != 8 + t.payload_len, udp)
    tcp = t.proto == PROTO_TCP
    out["length.tcp_offset_bad_rate"] = _rate((t.l4[:, 12] >> 4) < 5, tcp)
    back = np.zeros(n, np.bool_)
    if n > 1:
        back[1:] = (t.ts_ns[1:] < t.ts_ns[:-1]) & (t.file[1:] == t.file[:-1])
    out["timestamps.backwards_rate"] = _rate(back)
    out.update({f"tcp.{k}": v for k, v in tcp_state_figures(t).items()})
    return out


def tcp_state_figures(t: Traffic) -> dict[str, float]:
    """TCP state checks, per flow in time order (rates; NaN without TCP):

    - ``handshake_rate``: TCP flows of 3+ packets that open with SYN (originator), SYN-ACK
      (responder), ACK (originator), of those flows;
    - ``seq_bad_rate``: packets whose sequence number is not the one their direction's previous
      packet leads to (seq + payload + SYN + FIN, modulo 2^32), of packets with such a previous
      packet (retransmissions and losses count);
    - ``ack_unseen_rate``: ACKs acknowledging bytes the peer has not sent yet (beyond the
      peer's highest next sequence number so far), of ACK-flagged packets after a peer packet;
    - ``no_ack_rate``: packets after a flow's first two without the ACK flag;
    - ``syn_after_data_rate``: SYNs sent after their direction already sent a non-SYN packet;
    - ``after_rst_rate``: packets that follow an RST in their flow.
    """
    rows = np.flatnonzero((t.proto == PROTO_TCP) & (t.flow >= 0))
    names = ("handshake_rate", "seq_bad_rate", "ack_unseen_rate", "no_ack_rate",
             "syn_after_data_rate", "after_rst_rate")  # fmt: skip
    if not len(rows):
        return {k: float("nan") for k in names}
    order = rows[np.lexsort((rows, t.ts_ns[rows], t.flow[rows]))]
    m = len(order)
    flow = t.flow[order]
    d = t.direction[order].astype(np.int64)
    l4 = t.l4[order]
    flags = l4[:, 13].astype(np.int64)
    syn, fin, rst, ack_f = (flags & 2) > 0, (flags & 1) > 0, (flags & 4) > 0, (flags & 16) > 0
    seq, ack = _be(l4, 4, 4), _be(l4, 8, 4)
    nxt = (seq + t.payload_len[order] + syn + fin) % _U32
    pos = np.arange(m)
    start = np.ones(m, np.bool_)
    start[1:] = flow[1:] != flow[:-1]
    fstart = np.maximum.accumulate(np.where(start, pos, 0))
    rank = pos - fstart

    def last_of(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        """For each packet, the index of the latest earlier packet of ``mask`` in its flow."""
        idx = np.maximum.accumulate(np.where(mask, pos, -1))
        prev = np.full(m, -1, np.int64)
        prev[1:] = idx[:-1]
        return np.where(prev >= fstart, prev, -1)

    prev_same = np.where(d == 0, last_of(d == 0), last_of(d == 1))
    has_prev = prev_same >= 0
    seq_bad = has_prev & (seq != nxt[np.maximum(prev_same, 0)])

    # the peer's highest next sequence number so far: per side, next sequence numbers relative
    # to the side's first packet in the flow (unwrapped mod 2^32), their running maximum within
    # the flow (flows are contiguous: each flow's values are offset by its rank), taken just
    # before each packet
    seg = np.flatnonzero(start)
    seg_len = np.diff(np.r_[seg, m])
    key = np.repeat(np.arange(len(seg), dtype=np.int64), seg_len) * (_U32 + 2)
    peer_hi = np.full(m, -1, np.int64)
    for side in (0, 1):
        mine = d == side
        base = np.repeat(np.minimum.reduceat(np.where(mine, pos, m), seg), seg_len)
        base_seq = np.where(base < m, seq[np.minimum(base, m - 1)], 0)
        rel = (nxt - base_seq) % _U32
        run = np.maximum.accumulate(np.where(mine, rel, -1) + key) - key
        before = np.full(m, -1, np.int64)
        before[1:] = run[:-1]
        before[start] = -1
        take = (d != side) & (before >= 0)
        peer_hi = np.where(take, (before + base_seq) % _U32, peer_hi)
    checked_ack = ack_f & (peer_hi >= 0)
    ahead = (ack - peer_hi) % _U32
    ack_unseen = checked_ack & (ahead > 0) & (ahead < (1 << 31))

    no_ack = (rank >= 2) & ~ack_f
    nonsyn_same = np.where(d == 0, last_of(~syn & (d == 0)), last_of(~syn & (d == 1)))
    syn_late = syn & (nonsyn_same >= 0)
    after_rst = last_of(rst) >= 0

    flow_start = np.flatnonzero(start)
    flow_len = np.diff(np.r_[flow_start, m])
    long = flow_len >= 3
    fs = flow_start[long]
    hs = (
        (flags[fs] & 0x12 == 0x02) & (d[fs] == 0)
        & (flags[fs + 1] & 0x12 == 0x12) & (d[fs + 1] == 1)
        & ((flags[fs + 2] & 0x12) == 0x10) & (d[fs + 2] == 0)
    )  # fmt: skip
    return {
        "handshake_rate": float(hs.mean()) if len(hs) else float("nan"),
        "seq_bad_rate": _rate(seq_bad, has_prev),
        "ack_unseen_rate": _rate(ack_unseen, checked_ack),
        "no_ack_rate": _rate(no_ack, rank >= 2),
        "syn_after_data_rate": _rate(syn_late),
        "after_rst_rate": _rate(after_rst),
    }


def tshark_rates(
    pcaps: Sequence[str | os.PathLike[str]],
    *,
    tshark: str | None = None,
    display_filter: str | None = None,
) -> tuple[dict[str, float], Counter[str], int]:
    """Per-packet rates over ``pcaps`` of tshark's verdicts (``malformed``, ``error``,
    ``warning``, ``tcp_analysis``, ``bad_checksum``), the TCP-analysis expert messages by
    kind (connection-setup notes left out), and the packets counted. Only packets matching
    ``display_filter`` count (e.g. ``"ip"``)."""
    import pandas as pd

    exe = tshark or shutil.which("tshark")
    if exe is None:
        raise FileNotFoundError("tshark is not installed")
    counts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    total = 0
    flt = ["-Y", display_filter] if display_filter else []
    for pcap in pcaps:
        cmd = [exe, "-n", "-r", str(pcap), *TSHARK_PREFS, *flt, "-T", "fields",
               "-E", "occurrence=a", "-E", "aggregator=|",
               *(x for c in _TSHARK_COLUMNS for x in ("-e", c))]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 and not done.stdout:
            last = (done.stderr.strip().splitlines() or ["failed"])[-1]
            raise OSError(f"{pcap}: tshark exited with status {done.returncode}: {last}")
        if not done.stdout.strip("\n"):
            continue
        frame = pd.read_csv(
            io.StringIO(done.stdout), sep="\t", header=None, names=_TSHARK_COLUMNS, dtype=str,
            keep_default_na=False, quoting=3, index_col=False,
        )  # fmt: skip
        total += len(frame)
        counts["malformed"] += int((frame["_ws.malformed"] != "").sum())
        sev = frame["_ws.expert.severity"].str.split("|", expand=True)
        sev = sev.apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
        sev = np.nan_to_num(sev, nan=0.0).reshape(len(frame), -1)
        counts["error"] += int((sev >= _SEV_ERROR).any(axis=1).sum())
        counts["warning"] += int(((sev >= _SEV_WARN) & (sev < _SEV_ERROR)).any(axis=1).sum())
        flagged = frame["tcp.analysis.flags"] != ""
        counts["tcp_analysis"] += int(flagged.sum())
        bad = np.zeros(len(frame), np.bool_)
        for c in _TSHARK_COLUMNS[3:7]:
            bad |= frame[c].str.contains(r"(?:^|\|)0(?:\||$)", regex=True).to_numpy(np.bool_)
        counts["bad_checksum"] += int(bad.sum())
        msgs = frame.loc[flagged, "_ws.expert.message"].str.split("|").explode()
        msgs = msgs[(msgs != "") & ~msgs.str.startswith("Connection ")]
        kinds.update(msgs.value_counts().to_dict())
    names = ("malformed", "error", "warning", "tcp_analysis", "bad_checksum")
    rates = {k: counts[k] / total if total else float("nan") for k in names}
    return rates, kinds, total


def zeek_states(t: Traffic) -> tuple[Counter[str], Counter[str]]:
    """``conn_state`` and ``history`` counts over the connections of ``t``, as
    ``netdiffusion_zeek`` (Zeek's semantics) logs them; each capture file is tracked on its own
    (files of one set may overlap in time)."""
    from netdiffusion_zeek import ConnLogWriter

    states: Counter[str] = Counter()
    hist: Counter[str] = Counter()
    if t.n_packets == 0:
        return states, hist
    order = np.lexsort((t.ts_ns, t.file))
    files = t.file[order]
    cuts = np.flatnonzero(np.diff(files)) + 1
    for part in np.split(order, cuts):
        writer = ConnLogWriter(Path(os.devnull).parent, json=False)
        writer.add(t.take(part))
        cols = writer.columns()
        states.update(str(s) for s in cols.get("conn_state", []))
        hist.update(str(h) if h is not None else "-" for h in cols.get("history", []))
    return states, hist


def distribution_jsd(a: Counter[str], b: Counter[str]) -> float:
    """Jensen-Shannon divergence (bits) between two categorical count tables; NaN if one is
    empty."""
    na, nb = sum(a.values()), sum(b.values())
    if not na or not nb:
        return float("nan")
    keys = sorted(set(a) | set(b))
    p = np.array([a[k] for k in keys], np.float64) / na
    q = np.array([b[k] for k in keys], np.float64) / nb
    from netdiffusion.evaluation.fidelity import per_column_distances

    return float(per_column_distances(p[None], q[None])["jsd"][0])
