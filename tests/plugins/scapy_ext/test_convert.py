"""Scapy packets to Traffic: the same columns the capture reader gives for the same file, and
``netdiffusion.train`` / ``encode`` taking packets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scapy.layers.ppp  # noqa: F401 - binds link type 9 (PPP), as a Scapy session does
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.plist import PacketList
from scapy.utils import rdpcap

import netdiffusion
from netdiffusion.capture import read_capture
from netdiffusion.emit.pcap import pcap_records
from netdiffusion_scapy import ConversionError, packets_to_traffic, to_traffic

COLUMNS = ("ts_ns", "ip", "l4", "payload_len", "payload", "payload_off", "mac")

#: Real captures of several link types: Ethernet (with ARP and other non-IP frames), Linux
#: cooked capture, raw IPv4, PPP.
CAPTURES = [
    "iot-sentinel/captures/Aria/Setup-A-2-STA.pcap",
    "ndpi/pcap/dns_doh.pcap",
    "ndpi/pcap/dns2tcp_tunnel.pcap",
    "ndpi/pcap/rsh-syslog-false-positive.pcap",
    "ndpi/pcap/dlt_ppp.pcap",
]


@pytest.mark.parametrize("name", CAPTURES)
def test_rdpcap_result_gives_what_the_reader_gives(shared_data: Path, name: str) -> None:
    path = shared_data / name
    if not path.is_file():
        pytest.skip(f"{name} not found")
    traffic, report = packets_to_traffic(rdpcap(str(path)), name=path.name)
    want, want_report = read_capture(path)
    assert traffic.n_packets == want.n_packets > 0
    for col in COLUMNS:
        assert np.array_equal(getattr(traffic, col), getattr(want, col)), col
    assert report.skipped == want_report.skipped
    assert report.packets_kept == want_report.packets_kept
    assert traffic.files == [path.name]


def test_generated_packets_round_trip(run: Any) -> None:
    """Packets -> Traffic -> the pcap emitter's records: the frames are the packets' bytes."""
    traffic = to_traffic(PacketList(run.packets))
    recs = pcap_records(traffic)
    data = recs.data[: recs.nbytes].tobytes()
    frames = [
        data[s + 16 : e] for s, e in zip(recs.starts.tolist(), recs.ends.tolist(), strict=True)
    ]
    assert frames == run.frames


def test_ip_packets_and_skips() -> None:
    t0 = 1_700_000_000
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    udp = eth / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5000, dport=53) / b"abcd"
    pkts = [udp, Ether() / ARP(), Ether() / IPv6() / UDP(), udp[IP].copy()]
    for i, p in enumerate(pkts):
        p.time = t0 + i * 0.5
    traffic, report = packets_to_traffic(pkts)
    assert report.skipped == {"arp": 1, "ipv6": 1} and traffic.n_packets == 2
    assert traffic.ts_ns.tolist() == [t0 * 10**9, (t0 + 1.5) * 10**9]
    assert np.array_equal(traffic.ip[0], traffic.ip[1]) and traffic.payload_len.tolist() == [4, 4]
    assert traffic.mac[1].sum() == 0 and traffic.mac[0].sum() > 0  # raw IP has no MACs
    assert sorted(report.link_types) == [1, 228]


def test_non_packets_are_one_line_errors() -> None:
    with pytest.raises(ConversionError, match="item 1 is a int, not a Scapy packet"):
        packets_to_traffic([Ether() / IP(), 3])
    with pytest.raises(ConversionError, match="not a list of Scapy packets"):
        packets_to_traffic(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot use a list as traffic") as err:
        netdiffusion.encode([1, 2, 3])
    assert "\n" not in str(err.value)


def test_train_and_encode_take_packets(tmp_path: Path, run: Any, model: Any) -> None:
    """A {class: PacketList} mapping trains a model that the socket then samples from."""
    from netdiffusion.dataset import load_dataset
    from netdiffusion_scapy import SynthSocket

    half = len(run.packets) // 2
    data = {"first": PacketList(run.packets[:half]), "second": run.packets[half:]}
    flows = netdiffusion.encode(data, tmp_path / "d.safetensors")
    assert flows.classes == ["first", "second"] and flows.n_packets == len(run.packets)
    assert load_dataset(tmp_path / "d.safetensors").n_flows == flows.n_flows
    labelled = netdiffusion.encode(PacketList(run.packets), labels="web")
    assert labelled.classes == ["web"] and (labelled.flow_label == 0).all()
    res = netdiffusion.train(
        data, out=tmp_path / "m", steps=3, max_packets=8, batch_size=16,
        config={"width": 32, "layers": 1, "heads": 2},
    )  # fmt: skip
    assert res.steps == 3
    trained = netdiffusion.load_model(tmp_path / "m", device="cpu")
    assert trained.classes == ["first", "second"]
    got = list(SynthSocket(model=tmp_path / "m", cls="second", count=20, device="cpu"))
    assert 0 < len(got) <= 20 and all(Ether in p for p in got)
