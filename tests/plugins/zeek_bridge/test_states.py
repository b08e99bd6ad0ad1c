"""conn_state, history and connection splitting on hand-built packets (what the baselines lack)."""

from __future__ import annotations

import numpy as np
import pytest

from netdiffusion.checksum import fill_checksums
from netdiffusion_zeek import ConnLogWriter
from tests.packets import Pkt, make_traffic

A, B = "10.0.0.1", "93.184.216.34"
SYN, SYNACK, ACK, PSH, FIN, RST = 0x02, 0x12, 0x10, 0x18, 0x11, 0x04
RSTACK = 0x14


def _tcp(
    ts: float, fwd: bool, flags: int, seq: int, ack: int = 0, data: bytes = b"", port: int = 8081
) -> Pkt:
    src, dst, sp, dp = (A, B, 40000, port) if fwd else (B, A, port, 40000)
    return Pkt(ts, src, dst, sport=sp, dport=dp, flags=flags, seq=seq, ack=ack, payload=data)


def _rows(pkts: list[Pkt], **opts: object) -> list[dict[str, object]]:
    writer = ConnLogWriter("unused", **opts)
    writer.add(fill_checksums(make_traffic(pkts)))
    return writer.rows()


def _hs() -> list[Pkt]:
    return [
        _tcp(0.0, True, SYN, 100),
        _tcp(0.01, False, SYNACK, 500, 101),
        _tcp(0.02, True, ACK, 101, 501),
    ]


CASES = {
    "S0": ([_tcp(0.0, True, SYN, 100)], "S0", "S"),
    "REJ": ([_tcp(0.0, True, SYN, 100), _tcp(0.01, False, RSTACK, 0, 101)], "REJ", "Sr"),
    "S1": (_hs(), "S1", "ShA"),
    "SF": (
        [
            *_hs(),
            _tcp(0.03, True, PSH, 101, 501, b"hi"),
            _tcp(0.04, True, FIN | ACK, 103, 501),
            _tcp(0.05, False, FIN | ACK, 501, 104),
            _tcp(0.06, True, ACK, 104, 502),
        ],
        "SF",
        "ShADFf",
    ),
    "S2": ([*_hs(), _tcp(0.04, True, FIN | ACK, 101, 501)], "S2", "ShAF"),
    "S3": ([*_hs(), _tcp(0.04, False, FIN | ACK, 501, 101)], "S3", "ShAf"),
    "RSTO": ([*_hs(), _tcp(0.04, True, RST, 101)], "RSTO", "ShAR"),
    "RSTR": ([*_hs(), _tcp(0.04, False, RST, 501)], "RSTR", "ShAr"),
    "RSTOS0": ([_tcp(0.0, True, SYN, 100), _tcp(0.5, True, RST, 101)], "RSTOS0", "SR"),
    # A first SYN-ACK from a likely server port (80) flips the roles ("^").
    "RSTRH": (
        [_tcp(0.0, False, SYNACK, 500, 101, port=80), _tcp(0.1, False, RST, 501, port=80)],
        "RSTRH",
        "^hr",
    ),
    "no-flip": ([_tcp(0.0, False, SYNACK, 500, 101), _tcp(0.1, False, RST, 501)], "OTH", "HR"),
    "SH": ([_tcp(0.0, True, SYN, 100), _tcp(0.1, True, FIN | ACK, 101)], "SH", "SF"),
    "SHR": (
        [
            _tcp(0.0, False, SYNACK, 500, 101, port=80),
            _tcp(0.1, False, FIN | ACK, 501, 101, port=80),
        ],
        "SHR",
        "^hf",
    ),
    "OTH": ([_tcp(0.0, True, PSH, 100, 1, b"x"), _tcp(0.1, False, PSH, 1, 101, b"y")], "OTH", "Dd"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tcp_conn_states(name: str) -> None:
    pkts, state, history = CASES[name]
    rows = _rows(pkts)
    assert len(rows) == 1, rows
    assert (rows[0]["conn_state"], rows[0]["history"]) == (state, history)


def test_retransmission_and_scaled_checksum_letters() -> None:
    pkts = [*_hs()] + [_tcp(0.1 + i / 100, True, PSH, 101, 501, b"abc") for i in range(3)]
    assert _rows(pkts)[0]["history"] == "ShADT"
    bad = fill_checksums(
        make_traffic([_tcp(i / 100, True, PSH, 100 + i, 1, b"z") for i in range(12)])
    )
    bad.l4[:, 16] ^= 0xFF  # every TCP checksum wrong, IP headers right
    writer = ConnLogWriter("unused")
    writer.add(bad)
    (conn,) = writer.rows()
    assert conn["history"] == "CC" and conn["orig_pkts"] == 0  # 1st and 10th bad packet
    writer = ConnLogWriter("unused", ignore_checksums=True)
    writer.add(bad)
    (ok,) = writer.rows()
    assert ok["orig_pkts"] == 12 and ok["history"] == "D"
    no_ip = make_traffic([_tcp(0.0, True, SYN, 100)])  # IP header checksum 0: dropped, as Zeek does
    writer = ConnLogWriter("unused")
    writer.add(no_ip)
    assert writer.rows() == []


def test_splits_on_close_delay_attempt_and_inactivity() -> None:
    sf = CASES["SF"][0]
    again = [*sf, _tcp(20.0, True, SYN, 900)]  # a new SYN 20 s after a finished connection
    assert [r["conn_state"] for r in _rows(again)] == ["SF", "S0"]
    attempt = [_tcp(0.0, True, SYN, 100), _tcp(6.0, True, PSH, 101, 1, b"late")]
    assert [r["history"] for r in _rows(attempt)] == ["S", "D"]
    udp = [Pkt(t, A, B, proto=17, sport=5000, dport=53) for t in (0.0, 30.0, 100.0)]
    assert [r["orig_pkts"] for r in _rows(udp)] == [2, 1]  # a 70 s gap > udp 60 s timeout


def test_chunks_carry_open_connections() -> None:
    pkts = [
        *CASES["SF"][0],
        *[Pkt(400 + i, A, B, proto=17, sport=5000, dport=123) for i in range(3)],
    ]
    whole = _rows(pkts)
    writer = ConnLogWriter("unused")
    traffic = fill_checksums(make_traffic(pkts))
    for lo, hi in ((0, 2), (2, 5), (5, 8), (8, len(pkts))):
        part = traffic.take(list(range(lo, hi)))
        part.flow[:] = 0  # flow ids restart per chunk: not used
        writer.add(part)
    chunked = writer.rows()
    drop = ("uid",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in chunked] == [
        {k: v for k, v in r.items() if k not in drop} for r in whole
    ]


def test_random_packets_keep_zeek_invariants() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    pkts = [
        Pkt(
            float(t),
            A if fwd else B,
            B if fwd else A,
            proto=int(proto),
            sport=int(sp) if fwd else int(dp),
            dport=int(dp) if fwd else int(sp),
            flags=int(fl),
            seq=int(seq),
            ack=int(ack),
            payload=b"x" * int(size),
        )
        for t, fwd, proto, sp, dp, fl, seq, ack, size in zip(
            np.sort(rng.uniform(0, 900, n)),
            rng.random(n) < 0.5,
            rng.choice([6, 6, 6, 17, 1], n),
            rng.choice([80, 443, 5000, 40000], n),
            rng.choice([53, 80, 40001], n),
            rng.choice([0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x05, 0x03], n),
            rng.integers(0, 2**32, n),
            rng.integers(0, 2**32, n),
            rng.integers(0, 40, n),
            strict=True,
        )
    ]
    traffic = fill_checksums(make_traffic(pkts))
    traffic.l4[::7, 16] ^= 0x5A  # some bad checksums
    writer = ConnLogWriter("unused")
    for lo in range(0, n, 700):
        writer.add(traffic.take(np.arange(lo, min(n, lo + 700))))
    cols = writer.columns()
    states = {"S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR"}
    assert set(cols["conn_state"]) <= states | {"OTH"}
    assert all(h is None or set(h) <= set("^SHADFRIQCTWGshadfriqctwg") for h in cols["history"])
    counted = sum(cols["orig_pkts"]) + sum(cols["resp_pkts"])
    assert 0 < counted < n  # bad checksums are not counted
    assert all(b is None or b >= 0 for b in cols["orig_bytes"])


def test_chunked_real_trace_equals_whole(shared_data) -> None:
    from netdiffusion.capture import read_capture

    trace = shared_data / "zeek-baselines/Traces/ssh/ssh.client-side-half-duplex.pcap"
    traffic, _ = read_capture(trace)
    whole = ConnLogWriter("unused")
    whole.add(traffic)
    parts = ConnLogWriter("unused")
    for idx in np.array_split(np.arange(traffic.n_packets), 9):
        parts.add(traffic.take(idx))
    a, b = whole.columns(), parts.columns()
    del a["uid"], b["uid"]
    assert a == b and len(a["ts"]) == 25
