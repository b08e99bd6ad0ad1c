"""SynthSocket: the packets are the pcap records ``generate`` writes, fully built, with times;
it works with sniff() and its options, streams chunk by chunk and ends with EOFError."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from scapy.layers.dns import DNS
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.sendrecv import sniff
from scapy.sessions import TCPSession
from scapy.utils import EDecimal, rdpcap

from netdiffusion.model import ModelError
from netdiffusion_scapy import SynthSocket


def test_packets_are_the_pcap_records(run: Any) -> None:
    assert len(run.packets) == len(run.frames) > 1500
    power = Decimal(10) ** -6
    for p, frame, sec, usec in zip(run.packets, run.frames, run.sec, run.usec, strict=True):
        assert isinstance(p, Ether)
        assert bytes(p) == frame
        assert isinstance(p.time, EDecimal) and p.time == sec + power * usec
        assert p.wirelen == len(frame)
    times = [p.time for p in run.packets]
    assert all(a <= b for a, b in itertools.pairwise(times))
    kinds = {
        "tcp": sum(TCP in p for p in run.packets),
        "udp": sum(UDP in p for p in run.packets),
        "icmp": sum(ICMP in p for p in run.packets),
        "dns": sum(DNS in p for p in run.packets),
    }
    assert min(kinds.values()) > 0, kinds


def test_scapy_rebuilds_the_same_bytes(run: Any) -> None:
    """Scapy re-serialises every packet to its bytes, and recomputes the same lengths and
    checksums when they are deleted (so they were right)."""
    for p in run.packets:
        raw = bytes(p)
        assert bytes(p.__class__(raw)) == raw
        q = p.__class__(raw)
        del q[IP].len, q[IP].chksum
        for layer in (TCP, UDP, ICMP):
            if layer in q:
                del q[layer].chksum
        if UDP in q:
            del q[UDP].len
        assert bytes(q) == raw, p.summary()


def test_sniff_options(model: Any) -> None:
    def sock(**kw: Any) -> SynthSocket:
        return SynthSocket(model=model, flows=60, seed=3, device="cpu", **kw)

    ref = list(sock())
    first = [bytes(p) for p in ref[:40]]
    got = sniff(opened_socket=sock(), count=40)
    assert [bytes(p) for p in got] == first
    seen: list[str] = []
    udp = sniff(opened_socket=sock(), count=10, lfilter=lambda p: UDP in p, prn=seen.append)
    want = [p for p in ref if UDP in p][:10]
    assert [bytes(p) for p in udp] == [bytes(p) for p in want] and len(seen) == 10
    tcp = sniff(opened_socket=sock(), count=60, session=TCPSession)
    assert len(tcp) == 60 and all(Ether in p for p in tcp)
    s = sock()
    assert [bytes(p) for p in s.sniff(count=40)] == first
    s.close()


def test_eof_at_the_end(model: Any) -> None:
    s = SynthSocket(model=model, flows=3, seed=5, device="cpu")
    everything = sniff(opened_socket=s)  # no count: stops at the end of the stream
    assert len(everything) > 3
    with pytest.raises(EOFError):
        s.recv()
    s = SynthSocket(model=model, count=7, flows=50, seed=5, device="cpu")
    assert len([s.recv() for _ in range(7)]) == 7
    with pytest.raises(EOFError):
        s.recv()
    assert SynthSocket.select([s]) == [s] and s.nonblocking_socket


class _Spy:
    """A model whose record chunks are counted as the socket takes them."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.taken = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def generate_records(self, *args: Any, **kwargs: Any) -> Any:
        for recs in self.model.generate_records(*args, **kwargs):
            self.taken += 1
            yield recs


def test_streams_chunk_by_chunk(model: Any) -> None:
    spy = _Spy(model)
    s = SynthSocket(model=spy, flows=40, batch_size=8, seed=2, device="cpu")
    assert spy.taken == 0  # nothing generated before the first recv
    s.recv()
    assert spy.taken == 1
    rest = list(s)
    assert spy.taken >= 4 and rest
    times = [p.time for p in rest]
    assert all(a <= b for a, b in itertools.pairwise(times))


def test_nanosecond_times(model: Any) -> None:
    us = list(SynthSocket(model=model, count=30, flows=10, seed=4, device="cpu"))
    ns = list(SynthSocket(model=model, count=30, flows=10, seed=4, device="cpu", nanosecond=True))
    assert [bytes(p) for p in us] == [bytes(p) for p in ns]
    assert all(int(a.time * 10**6) == int(b.time * 10**6) for a, b in zip(us, ns, strict=True))
    assert any(b.time != a.time for a, b in zip(us, ns, strict=True))  # ns digits kept


def test_count_is_what_generate_writes(model: Any, tmp_path: Path) -> None:
    """``SynthSocket(count=N, seed=S)`` delivers what ``generate --packets N --seed S`` writes
    (same flow plan, same chunks, same records)."""
    from netdiffusion.cli import create_cli

    out = tmp_path / "gen.pcap"
    res = CliRunner().invoke(
        create_cli(load_entrypoints=False),
        ["generate", "--packets", "45", "--seed", "9", "--device", "cpu", "-o", str(out)],
    )
    assert res.exit_code == 0, res.output
    written = rdpcap(str(out))
    got = list(SynthSocket(model=model, count=45, seed=9, device="cpu"))
    assert len(got) == len(written) > 0
    for a, b in zip(got, written, strict=True):
        assert bytes(a) == bytes(b) and a.time == b.time


def test_bad_requests_are_one_line_errors(model: Any, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown class 'NoSuchClass'") as err:
        SynthSocket(model=model, cls="NoSuchClass")
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match="no such model directory"):
        SynthSocket(model=tmp_path / "missing")
    with pytest.raises(ModelError, match="count"):
        SynthSocket(model=model, count=-1)
    with pytest.raises(OSError, match="read-only"):
        SynthSocket(model=model).send(Ether())
