"""Port policy of synthetic repair: ephemeral client ports, service ports kept unless unfillable."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from netdiffusion.checksum import fill_checksums
from netdiffusion.emit import assign_addresses, fill_payloads, write_pcap
from netdiffusion.emit._synth import synthetic_traffic
from netdiffusion.emit.payload import (
    EPHEMERAL_TAKEN,
    KIND_NAMES,
    UDP_TEMPLATE_MIN,
    UNFILLABLE_TCP,
    UNFILLABLE_UDP,
    ephemeral_ports,
    payload_kinds,
    safe_service_ports,
)
from netdiffusion.repair import repair

# unfillable service ports seen in real traffic or common (SSH, LDAP, PPTP, NetBIOS, SLP, RIP)
MOVED = [(6, 22), (6, 389), (6, 1723), (17, 137), (17, 427), (17, 520), (17, 4789)]
KEPT = [(6, 443), (6, 80), (6, 3306), (6, 88), (17, 53), (17, 161), (17, 9999), (6, 50000)]
LENS = [1, 8, 40, 300, 1000, 1400]


def _ports(t):  # type: ignore[no-untyped-def]
    sport = t.l4[:, 0].astype(np.int64) << 8 | t.l4[:, 1]
    dport = t.l4[:, 2].astype(np.int64) << 8 | t.l4[:, 3]
    orig = t.direction == 0
    return np.where(orig, dport, sport), np.where(orig, sport, dport)


def _flows(specs: list[tuple[int, int]], lens: list[int]):  # type: ignore[no-untyped-def]
    t = synthetic_traffic([p for p, _ in specs], [s for _, s in specs], [lens] * len(specs))
    return assign_addresses(t, seed=1, clients_per_class=64)


def test_safe_service_ports_moves_only_unfillable() -> None:
    proto = np.array([p for p, _ in MOVED + KEPT])
    port = np.array([s for _, s in MOVED + KEPT])
    out, moved = safe_service_ports(proto, port)
    assert moved.tolist() == [True] * len(MOVED) + [False] * len(KEPT)
    assert np.array_equal(out[len(MOVED) :], port[len(MOVED) :])
    for p, s in zip(proto[moved], out[moved], strict=True):
        assert s not in (UNFILLABLE_TCP if p == 6 else UNFILLABLE_UDP)
    assert (out[moved] > port[moved]).all()  # the next fillable port above
    # a templated UDP port keeps its port unless a payload is below the template's minimum
    short, moved2 = safe_service_ports(np.array([17, 17, 6]), np.array([67, 67, 67]),
                                       np.array([300, 47, 1]))  # fmt: skip
    assert moved2.tolist() == [False, True, False] and short[1] not in UDP_TEMPLATE_MIN
    assert not safe_service_ports(np.array([1]), np.array([22]))[1].any()  # ICMP: no ports


def test_ephemeral_ports_are_free_and_deterministic() -> None:
    v = np.arange(0, 65536, 7)
    e = ephemeral_ports(v)
    assert (e >= 49152).all() and (e <= 65535).all()
    assert not np.isin(e, list(EPHEMERAL_TAKEN)).any()
    free = (v >= 49152) & ~np.isin(v, list(EPHEMERAL_TAKEN))
    assert np.array_equal(e[free], v[free])  # an already ephemeral, free port is kept
    assert np.array_equal(ephemeral_ports(v), e)


def test_repair_applies_the_policy() -> None:
    t = _flows(MOVED + KEPT, [40, 300])
    # model client ports: low and taken ones must become ephemeral
    cli_in = np.array(
        [22, 53, 6000, 49999, 60001, 50000, 123, 40000, 1, 65535, 3306, 137, 80, 7, 9]
    )
    orig = t.direction == 0
    c = cli_in[t.flow]
    t.l4[orig, 0], t.l4[orig, 1] = c[orig] >> 8, c[orig] & 255
    t.l4[~orig, 2], t.l4[~orig, 3] = c[~orig] >> 8, c[~orig] & 255
    out, report = repair(t, synthetic=True, seed=3)
    svc, cli = _ports(out)
    f_svc = {int(f): int(s) for f, s in zip(out.flow, svc, strict=True)}
    f_cli = {int(f): int(s) for f, s in zip(out.flow, cli, strict=True)}
    for f, (_, port) in enumerate(MOVED + KEPT):
        assert (f_svc[f] != port) == (f < len(MOVED)), (f, port, f_svc[f])
        assert 49152 <= f_cli[f] <= 65535 and f_cli[f] not in EPHEMERAL_TAKEN
        assert f_cli[f] != f_svc[f]
    assert f_cli[5] == 50000  # kept: already a free ephemeral port
    moved_packets = int(np.isin(t.flow, np.arange(len(MOVED))).sum())
    assert report.fixed["service_port_unfillable"] == moved_packets
    kinds = {KIND_NAMES[k] for k in payload_kinds(out)}
    assert {"tls", "http", "dns"} <= kinds


def test_symmetric_client_ports_are_kept() -> None:
    t = _flows([(17, 5353), (17, 137), (17, 67)], [260, 300])  # 137: unfillable, moved
    out, _ = repair(t, synthetic=True)
    svc, cli = _ports(out)
    pairs = set(zip(svc.tolist(), cli.tolist(), strict=True))
    assert {(5353, 5353), (67, 68)} < pairs and len(pairs) == 3
    assert all(c >= 49152 for s, c in pairs if s not in (5353, 67))


def _flagged(path: Path) -> set[int]:
    """Every port of the frames tshark marks malformed or with an expert warning or error."""
    cmd = ["tshark", "-n", "-r", str(path), "-Y", "_ws.malformed || _ws.expert.severity >= 6291456",
           "-T", "fields", "-E", "occurrence=f", "-e", "tcp.srcport", "-e", "tcp.dstport",
           "-e", "udp.srcport", "-e", "udp.dstport"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return {int(x) for x in out.split()}


def test_moved_flows_are_clean_where_the_port_was_not(tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    t = _flows(MOVED + KEPT, LENS)
    # as generated, zero-filled on the model's port: tshark flags every unfillable service
    before = tmp_path / "before.pcap"
    write_pcap(fill_checksums(fill_payloads(t.copy())), before)
    assert {port for _, port in MOVED} <= _flagged(before)
    out, _ = repair(t, synthetic=True, seed=2)
    after = tmp_path / "after.pcap"
    write_pcap(out, after)
    assert _flagged(after) == set()
