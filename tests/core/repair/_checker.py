"""An independent, per-packet reference checker of repaired synthetic traffic (loops on purpose).

It re-derives every invariant the repair engine promises from the output bytes alone, one flow
and one packet at a time, and returns human-readable problems (empty list = valid).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from netdiffusion import Traffic
from netdiffusion.checksum import checksum_ok

SYN_ONLY = {2, 3, 4}  # MSS, window scale, SACK-permitted


def _be(b: bytes) -> int:
    return int.from_bytes(b, "big")


def _tcp_options(hdr: bytes) -> list[tuple[int, bytes]] | None:
    """Options of a TCP header as (kind, data); None when malformed."""
    out = []
    i = 20
    while i < len(hdr):
        kind = hdr[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(hdr) or hdr[i + 1] < 2 or i + hdr[i + 1] > len(hdr):
            return None
        ln = hdr[i + 1]
        want = {2: 4, 3: 3, 4: 2, 8: 10}.get(kind)
        if want is not None and ln != want:
            return None
        out.append((kind, hdr[i + 2 : i + ln]))
        i += ln
    return out


def check(t: Traffic, mtu: int = 1500) -> list[str]:
    """Every problem found in ``t`` (repaired synthetic traffic)."""
    probs: list[str] = []
    n = t.n_packets
    ok = checksum_ok(t)
    for i in np.flatnonzero(~ok["ip"]):
        probs.append(f"pkt {i}: bad IP checksum")
    for i in np.flatnonzero(~(ok["l4"] & ok["l4_checked"])):
        probs.append(f"pkt {i}: bad or unverifiable L4 checksum")
    if n and (np.diff(t.ts_ns) < 0).any():
        probs.append("timestamps decrease")
    flows: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        flows[int(t.flow[i])].append(i)
        ip = t.ip[i].tobytes()
        ihl = (ip[0] & 15) * 4
        if ip[0] >> 4 != 4 or ihl < 20:
            probs.append(f"pkt {i}: version/IHL {ip[0]:#x}")
        if any(ip[ihl:]):
            probs.append(f"pkt {i}: bytes beyond the IP header")
        proto = ip[9]
        l4 = t.l4[i].tobytes()
        hl = (l4[12] >> 4) * 4 if proto == 6 else 8
        plen = int(t.payload_len[i])
        if t.held_payload_len[i] != plen:
            probs.append(f"pkt {i}: holds {t.held_payload_len[i]} of {plen} payload bytes")
        total = _be(ip[2:4])
        if total != ihl + hl + plen or total > mtu:
            probs.append(f"pkt {i}: IP total length {total} vs {ihl}+{hl}+{plen}, mtu {mtu}")
        if _be(ip[6:8]) & ~0x4000:
            probs.append(f"pkt {i}: fragment/reserved bits {_be(ip[6:8]):#x}")
        if ip[8] < 5:
            probs.append(f"pkt {i}: TTL {ip[8]}")
        if any(l4[hl:]):
            probs.append(f"pkt {i}: bytes beyond the L4 header")
        if proto == 17 and _be(l4[4:6]) != 8 + plen:
            probs.append(f"pkt {i}: UDP length")
        if proto not in (1, 6, 17):
            probs.append(f"pkt {i}: protocol {proto}")
    for f, idx in flows.items():
        probs += _check_flow(t, f, idx)
    return probs


def _check_flow(t: Traffic, f: int, idx: list[int]) -> list[str]:
    probs: list[str] = []
    p = [f"flow {f}"]
    protos = {int(t.ip[i, 9]) for i in idx}
    if len(protos) != 1:
        return [f"{p[0]}: protocols {protos}"]
    proto = protos.pop()
    # addresses, ports, TTL and IP id per direction
    ends: dict[int, tuple[bytes, bytes]] = {}
    ttl: dict[int, set[int]] = defaultdict(set)
    last_id: dict[int, int] = {}
    for i in idx:
        d = int(t.direction[i])
        src, dst = t.ip[i, 12:16].tobytes(), t.ip[i, 16:20].tobytes()
        ports = t.l4[i, 0:4].tobytes() if proto != 1 else b""
        a, b = (src + ports[:2], dst + ports[2:]) if d == 0 else (dst + ports[2:], src + ports[:2])
        if ends.setdefault(0, (a, b)) != (a, b):
            probs.append(f"{p[0]}: endpoints differ at pkt {i}")
        ttl[d].add(int(t.ip[i, 8]))
        ipid = _be(t.ip[i, 4:6].tobytes())
        if d in last_id and ipid != (last_id[d] + 1) & 0xFFFF:
            probs.append(f"{p[0]}: IP id {ipid} after {last_id[d]} at pkt {i}")
        last_id[d] = ipid
    if any(len(v) > 1 for v in ttl.values()):
        probs.append(f"{p[0]}: TTLs {dict(ttl)}")
    if proto == 6:
        probs += _check_tcp(t, p[0], idx)
    elif proto == 1:
        probs += _check_icmp(t, p[0], idx)
    return probs


def _check_attempt(t: Traffic, name: str, idx: list[int]) -> list[str]:
    """An unanswered connection attempt: SYNs of the originator only, all with one ISN, ack 0,
    no payload, SYN options only."""
    probs: list[str] = []
    seqs = set()
    for k, i in enumerate(idx):
        hdr = t.l4[i].tobytes()
        if hdr[13] != 0x02 or _be(hdr[8:12]) or t.payload_len[i]:
            probs.append(f"{name} pkt {k}: an unanswered attempt has a non-SYN or data")
        seqs.add(_be(hdr[4:8]))
    if len(seqs) != 1:
        probs.append(f"{name}: retransmitted SYNs with different ISNs {sorted(seqs)}")
    return probs


def _check_tcp(t: Traffic, name: str, idx: list[int]) -> list[str]:
    if all(int(t.direction[i]) == 0 for i in idx) and all(t.l4[i, 13] & 0x02 for i in idx):
        return _check_attempt(t, name, idx)
    probs: list[str] = []
    nxt: dict[int, int] = {}
    acked: dict[int, int] = {}  # direction -> last ack it sent (of the peer's bytes)
    ends: dict[int, set[int]] = defaultdict(set)  # direction -> where its segments ended
    window: dict[int, int] = {}  # direction -> last scaled window it advertised
    tsval_last: dict[int, int] = {}
    fins: dict[int, int] = defaultdict(int)
    opts_seen: set[int] = set()
    ws: dict[int, int] = {}
    for k, i in enumerate(idx):
        d = int(t.direction[i])
        hdr = t.l4[i].tobytes()
        hl = (hdr[12] >> 4) * 4
        flags = hdr[13]
        seq, ack = _be(hdr[4:8]), _be(hdr[8:12])
        win, urg = _be(hdr[14:16]), _be(hdr[18:20])
        plen = int(t.payload_len[i])
        if hdr[12] & 0x0F or flags & 0xE0 or urg:
            probs.append(f"{name} pkt {k}: reserved/ECN/URG bits or urgent pointer")
        want = [(0x02, 0), (0x12, 1), (0x10, 0)]
        if k < 3:
            if flags & 0x17 != want[k][0] or d != want[k][1]:
                probs.append(f"{name} pkt {k}: flags {flags:#x} dir {d}: not the handshake")
        elif flags & 0x02:
            probs.append(f"{name} pkt {k}: SYN after the handshake")
        if flags & 0x04 and k != len(idx) - 1:
            probs.append(f"{name} pkt {k}: packets after RST")
        if flags & 0x01:
            fins[d] += 1
        if fins[d] and not flags & 0x01 and (plen or flags & 0x01):
            probs.append(f"{name} pkt {k}: data after FIN")
        if fins[d] > 1:
            probs.append(f"{name}: two FINs in direction {d}")
        if d in nxt and seq != nxt[d]:
            probs.append(f"{name} pkt {k}: seq {seq} != {nxt[d]}")
        peer = 1 - d
        if k > 0:
            if not flags & 0x10:
                probs.append(f"{name} pkt {k}: no ACK flag")
            elif peer in nxt and ack not in ends[peer]:
                probs.append(f"{name} pkt {k}: ack {ack} is no end of a peer segment")
            elif d in acked and (ack - acked[d]) % 2**32 >= 2**31:
                probs.append(f"{name} pkt {k}: ack {ack} goes back from {acked[d]}")
            elif k >= 3 and not plen and not flags & 0x07 and ack == acked.get(d):
                probs.append(f"{name} pkt {k}: a duplicate ACK")
        nxt[d] = (seq + plen + bool(flags & 0x02) + bool(flags & 0x01)) % 2**32
        if nxt[d] != seq:
            ends[d].add(nxt[d])
        if win == 0:
            probs.append(f"{name} pkt {k}: zero window")
        # bytes in flight against the peer's last ack and window
        if k >= 2 and peer in acked and peer in window:
            inflight = (nxt[d] - acked[peer]) % 2**32
            if inflight >= window[peer]:
                probs.append(f"{name} pkt {k}: {inflight} in flight >= window {window[peer]}")
        opts = _tcp_options(hdr[:hl])
        if opts is None:
            probs.append(f"{name} pkt {k}: malformed options")
            opts = []
        kinds = {kd for kd, _ in opts}
        if not flags & 0x02 and kinds & SYN_ONLY:
            probs.append(f"{name} pkt {k}: SYN-only option on a non-SYN")
        if flags & 0x02:
            opts_seen |= kinds
            for kd, data in opts:
                if kd == 3:
                    ws[d] = data[0]
        for kd, data in opts:
            if kd == 8:
                val, ecr = _be(data[:4]), _be(data[4:])
                if d in tsval_last and (val - tsval_last[d]) % 2**32 >= 2**31:  # RFC 7323 order
                    probs.append(f"{name} pkt {k}: TSval decreases")
                want_ecr = tsval_last.get(peer, 0)
                if ecr != want_ecr:
                    probs.append(f"{name} pkt {k}: TSecr {ecr} != peer TSval {want_ecr}")
                tsval_last[d] = val
        if (8 in opts_seen) != (8 in kinds):
            probs.append(f"{name} pkt {k}: timestamps not used consistently")
        if flags & 0x10:
            acked[d] = ack
            scale = ws.get(d, 0) if (flags & 0x02 == 0 and len(ws) == 2) else 0
            window[d] = win << scale
    return probs


def _check_icmp(t: Traffic, name: str, idx: list[int]) -> list[str]:
    probs: list[str] = []
    valid = {0: {0}, 8: {0}, 3: set(range(16)), 11: {0, 1}}
    ids = set()
    last_req_seq = None
    for k, i in enumerate(idx):
        ty, code = int(t.l4[i, 0]), int(t.l4[i, 1])
        if code not in valid.get(ty, set()):
            probs.append(f"{name} pkt {k}: type/code {ty}/{code}")
        if ty in (0, 8):
            ids.add(_be(t.l4[i, 4:6].tobytes()))
            seq = _be(t.l4[i, 6:8].tobytes())
            if ty == 8:
                last_req_seq = seq
                if int(t.direction[i]) != 0:
                    probs.append(f"{name} pkt {k}: request from the responder")
            elif seq != last_req_seq:
                probs.append(f"{name} pkt {k}: reply seq {seq} != request {last_req_seq}")
        elif int(t.payload_len[i]) < 28:
            probs.append(f"{name} pkt {k}: ICMP error quotes too little")
    if len(ids) > 1:
        probs.append(f"{name}: echo ids {ids}")
    return probs
