"""Payload filling: lengths, kept bytes, templates, and tshark's verdict over many ports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netdiffusion import Traffic
from netdiffusion.checksum import checksum_ok, fill_checksums
from netdiffusion.emit import assign_addresses, fill_payloads, payload_kinds, write_pcap
from netdiffusion.emit._synth import synthetic_traffic
from netdiffusion.emit.payload import KIND_NAMES, UDP_FILL_BYTES
from tests.core.emit._emit_testlib import (
    require_tool,
    tshark_expert_counts,
    tshark_fields,
    tshark_flagged,
)

# (protocol, service port, smallest payload the protocol can carry well formed)
TEMPLATED = [
    (17, 53, 17), (17, 5353, 17), (17, 5355, 17), (6, 53, 1), (17, 123, 48), (17, 67, 244),
    (6, 80, 1), (6, 8080, 1), (17, 1900, 17), (6, 443, 1), (6, 853, 1), (6, 993, 1),
    (6, 8443, 1), (6, 8883, 1), (17, 443, 1),
]  # fmt: skip
LENGTHS = [1, 2, 5, 11, 12, 13, 17, 18, 19, 20, 30, 48, 60, 64, 65, 66, 82, 100, 128, 146, 244,
           255, 270, 271, 272, 300, 512, 1000, 1400, 1460]  # fmt: skip
# Ports with no dissector complaint about zero bytes (checked: none is in tshark's flagged set).
PLAIN_PORTS = [(17, 9999), (6, 9999), (17, 49153), (6, 49153), (17, 3478), (6, 8000),
               (17, 10101), (6, 5222)]  # fmt: skip


def _built(specs: list[tuple[int, int]], lens: list[list[int]], seed: int = 0, **kw) -> Traffic:
    t = synthetic_traffic([p for p, _ in specs], [s for _, s in specs], lens, seed=seed, **kw)
    return assign_addresses(t, seed=seed, clients_per_class=64)


def test_every_packet_holds_payload_len_and_kept_bytes_survive() -> None:
    t = _built([(17, 53), (6, 443), (17, 9999)], [[40, 300], [10, 1400], [7, 0]])
    # Hold some bytes already: the first 3 bytes of every packet with a payload.
    has = t.payload_len >= 3
    held = np.where(has, 3, 0)
    off = np.zeros(t.n_packets + 1, np.int64)
    np.cumsum(held, out=off[1:])
    t = t.with_payload(np.full(int(off[-1]), 0xAB, np.uint8), off)
    f = fill_payloads(t)
    assert np.array_equal(f.held_payload_len, t.payload_len)
    for i in np.flatnonzero(has):
        assert f.payload_of(i)[:3] == b"\xab\xab\xab"
    assert fill_payloads(f).payload.tobytes() == f.payload.tobytes()  # nothing left to fill
    g = fill_payloads(t)
    assert g.payload.tobytes() == f.payload.tobytes()  # deterministic


def test_kinds_follow_service_port_and_protocol() -> None:
    t = _built([(17, 53), (6, 53), (6, 443), (17, 443), (17, 123), (1, 0)], [[40, 40]] * 6,
               icmp_type=[8, 8, 8, 8, 8, 11])  # fmt: skip
    names = {KIND_NAMES[k] for k in payload_kinds(t)[t.payload_len > 0]}
    assert {"dns", "dns-tcp", "tls", "raw", "ntp", "icmp-error"} <= names


def test_dns_query_and_response_parse(tmp_path: Path) -> None:
    lens = [17, 18, 30, 64, 81, 82, 146, 271, 272, 600]  # 82, 146: a 1-character last label
    t = fill_checksums(fill_payloads(_built([(17, 53)], [lens])))
    path = tmp_path / "dns.pcap"
    write_pcap(t, path)
    rows = tshark_fields(path, "udp.length", "dns.flags.response", "dns.id", "dns.qry.name")
    assert [int(r[0]) - 8 for r in rows] == lens
    assert [r[1] for r in rows] == ["0", "1"] * (len(lens) // 2)
    ids = [r[2] for r in rows]
    assert ids[0::2] == ids[1::2] and len(set(ids[0::2])) == len(lens) // 2
    names = [r[3] for r in rows]
    assert names[:2] == ["<Root>", "<Root>"]  # 17 bytes: the root; 18: a pointer to it
    assert all(set(n.replace(".", "")) <= set("abcdefghijklmnopqrstuvwxyz") for n in names[2:])
    assert names[5].split(".")[-1] == "a"


def test_icmp_error_embeds_a_matching_header(tmp_path: Path) -> None:
    t = fill_checksums(fill_payloads(_built([(1, 0), (1, 0)], [[28], [60]], icmp_type=[3, 11])))
    assert checksum_ok(t)["l4"].all()
    path = tmp_path / "icmp.pcap"
    write_pcap(t, path)
    rows = tshark_fields(path, "ip.src", "ip.dst", "ip.checksum.status", "icmp.type")
    for outer_inner in rows:
        src, dst = outer_inner[0].split(","), outer_inner[1].split(",")
        assert src[1] == dst[0] and dst[1] == src[0]  # the quoted datagram was sent to us
    assert {r[3] for r in rows} == {"3", "11"}


def test_many_ports_and_lengths_are_clean_in_tshark(tmp_path: Path) -> None:
    """Templated and plain ports, at every length at or above the protocol's minimum."""
    require_tool("tshark")
    specs, lens, minimum = [], [], []
    for proto, port, least in TEMPLATED:
        specs.append((proto, port))
        lens.append([n for n in LENGTHS if n >= least])
        minimum.append(least)
    for proto, port in PLAIN_PORTS:
        specs.append((proto, port))
        lens.append(LENGTHS)
    rng = np.random.default_rng(5)
    for proto in (6, 17):  # tiny TCP segments inside streams, mixed with big ones
        specs.append((proto, 443 if proto == 6 else 9999))
        lens.append(list(rng.choice([1, 2, 3, 4, 5, 200, 1400], size=40)))
    specs.append((6, 53))
    lens.append(list(rng.choice([1, 5, 18, 19, 40, 600], size=40)))
    icmp_specs = [(1, 0)] * 3
    icmp_lens = [[28, 56, 100], [28, 100], [28, 548]]
    t = _built([*specs, *icmp_specs], [*lens, *icmp_lens], icmp_type=[8] * len(specs) + [8, 3, 11],
               seed=3)  # fmt: skip
    t = fill_checksums(fill_payloads(t))
    ok = checksum_ok(t)
    assert ok["ip"].all() and ok["l4"].all()
    path = tmp_path / "ports.pcap"
    write_pcap(t, path)
    assert tshark_flagged(path) == []
    assert tshark_expert_counts(path) == {"malformed": 0, "error": 0, "warning": 0}


def test_below_minimum_is_what_remains_flagged(tmp_path: Path) -> None:
    """A 5-byte DNS message cannot be well formed: the test above is not vacuous."""
    require_tool("tshark")
    t = fill_checksums(fill_payloads(_built([(17, 53)], [[5, 5]])))
    path = tmp_path / "short.pcap"
    write_pcap(t, path)
    assert tshark_expert_counts(path)["malformed"] == 2


@pytest.mark.parametrize("port", sorted(UDP_FILL_BYTES)[:6])
def test_measured_port_fillers_are_used(port: int) -> None:
    t = fill_payloads(_built([(17, port)], [[40, 40]]))
    assert set(t.payload.tolist()) == {UDP_FILL_BYTES[port]}
