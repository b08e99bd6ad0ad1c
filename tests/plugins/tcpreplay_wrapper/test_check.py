"""``netdiffusion check``: each problem kind counted exactly, on our pcaps and foreign ones."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from netdiffusion.checksum import fill_checksums
from netdiffusion.cli import create_cli
from netdiffusion.emit import write_pcap
from netdiffusion_tcpreplay import BLOCKING, check_capture
from tests.plugins.tcpreplay_wrapper._replaylib import pcap_frames, require_tool


def _kinds(report) -> dict[str, int]:
    return {p.kind: p.count for p in report.problems}


def test_generated_pcaps_replay_clean(generated) -> None:
    """Our pcap and pcapng: nothing tcpreplay or tcpcapinfo would trip over (no short DNS
    either: repair gives an empty datagram to a DNS port the shortest question)."""
    for path in (generated.pcap, generated.pcapng):
        report = check_capture(path)
        assert _kinds(report) == {} and report.ok, report.lines()
        assert report.packets == report.ipv4_packets == generated.traffic.n_packets
        assert report.link_types == [1]
        ip_len = (generated.traffic.ip[:, 2].astype(int) << 8) | generated.traffic.ip[:, 3]
        assert report.largest_l3 == ip_len.max()


def test_tcpcapinfo_finds_nothing(generated) -> None:
    tcpcapinfo = require_tool("tcpcapinfo")
    out = subprocess.run([tcpcapinfo, str(generated.pcap)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    rows = [line for line in text.splitlines() if line[:1].isdigit()]
    assert len(rows) == generated.traffic.n_packets
    assert all(line.rstrip().endswith("OK") for line in rows), [
        r for r in rows if not r.rstrip().endswith("OK")
    ][:3]
    for flag in ("damaged", "truncated", "Sorry", "BAD_TS", "TOOBIG"):
        assert flag not in text


def _damaged(generated, tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """A pcap with known defects of each kind, and the counts expected."""
    t = generated.traffic.copy()
    proto = t.proto
    udp = np.flatnonzero(proto == 17)
    tcp = np.flatnonzero(proto == 6)
    icmp = np.flatnonzero(proto == 1)
    assert len(udp) >= 4 and len(tcp) >= 10 and len(icmp) >= 1
    # a UDP length field that disagrees with the IP length, with a checksum matching it
    t.l4[udp[0], 5] ^= 0x04
    t = fill_checksums(t)
    # wrong checksums: 3 IP headers, 4 TCP, 2 UDP, 1 ICMP (on other packets)
    t.ip[tcp[:3], 10] ^= 0xFF
    t.l4[tcp[3:7], 16] ^= 0x5A
    t.l4[udp[1:3], 7] = np.where(t.l4[udp[1:3], 7] == 0x11, 0x22, 0x11)
    t.l4[icmp[:1], 2] ^= 0x33
    # timestamps: two pairs swapped
    for a in (20, 40):
        t.ts_ns[[a, a + 1]] = t.ts_ns[[a + 1, a]] - np.array([0, 1])
    back = int((np.diff(t.ts_ns) < 0).sum())
    path = tmp_path / "damaged.pcap"
    write_pcap(t, path)
    # record-level defects: one frame's original length 10 bytes above its captured length,
    # and a snaplen of 200 in the file header
    raw = bytearray(path.read_bytes())
    frames = pcap_frames(path)
    at = 24 + sum(16 + len(f) for f in frames[:5])
    wire = int.from_bytes(raw[at + 12 : at + 16], "little") + 10
    raw[at + 12 : at + 16] = wire.to_bytes(4, "little")
    raw[16:20] = (200).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    sizes = np.array([len(f) for f in frames])
    want = {
        "snaplen": int((sizes > 200).sum()),
        "truncated": 1,
        "mtu": int((sizes - 14 > 300).sum()),
        "timestamps": back,
        "ip_checksum": 3,
        "tcp_checksum": 4,
        "udp_checksum": 2,
        "icmp_checksum": 1,
        "length": 1,
    }
    return path, want


def test_each_problem_counted(generated, tmp_path: Path) -> None:
    path, want = _damaged(generated, tmp_path)
    report = check_capture(path, mtu=300)
    got = _kinds(report)
    assert got == want
    assert not report.ok
    assert {p.kind for p in report.blocking} == {"snaplen", "mtu"} <= BLOCKING


def test_cli_check(generated, tmp_path: Path) -> None:
    cli = create_cli(load_entrypoints=True)
    runner = CliRunner()
    path, want = _damaged(generated, tmp_path)
    res = runner.invoke(cli, ["check", str(path), "--mtu", "300"])
    assert res.exit_code == 1, res.output
    lines = res.output.splitlines()
    assert "FAIL" in lines[0]
    for kind, count in want.items():  # one line per kind, with its count
        assert sum(line.split()[:2] == [kind, str(count)] for line in lines) == 1, kind
    res = runner.invoke(cli, ["check", str(path), "--json", "--mtu", "300"])
    data = json.loads(res.output)
    assert {k: v["count"] for k, v in data["problems"].items()} == want
    assert data["ok"] is False and data["mtu"] == 300
    # a clean capture passes with exit status 0: the generated traffic as written
    clean = generated.pcap
    res = runner.invoke(cli, ["check", str(clean), "-i", "lo", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["mtu_source"] == "lo"
    # bad input: one line, exit 1
    res = runner.invoke(cli, ["check", str(tmp_path / "missing.pcap")])
    assert res.exit_code == 1 and res.output.count("\n") == 1 and "missing.pcap" in res.output
    res = runner.invoke(cli, ["check", str(clean), "-i", "no-such-if0"])
    assert res.exit_code == 1 and "unknown interface" in res.output


def test_compressed_and_link_type(generated, tmp_path: Path) -> None:
    gz = tmp_path / "gen.pcap.gz"
    gz.write_bytes(gzip.compress(generated.pcap.read_bytes()))
    assert _kinds(check_capture(gz)).get("compressed") == 1
    raw = bytearray(generated.pcap.read_bytes())
    raw[20:24] = (101).to_bytes(4, "little")  # claim raw IP
    rawip = tmp_path / "rawip.pcap"
    rawip.write_bytes(bytes(raw))
    report = check_capture(rawip)
    assert _kinds(report)["link_type"] == generated.traffic.n_packets
    assert "tcprewrite --dlt=enet" in report.problems[0].message


def _tshark_bad(path: Path) -> dict[str, int]:
    """Wrong checksums per protocol as tshark counts them, in IPv4 TCP/UDP/ICMP packets (what
    the check covers; first header of each kind)."""
    tshark = require_tool("tshark")
    fields = ["ip", "tcp", "udp", "icmp"]
    cmd = [tshark, "-n", "-r", str(path), "-Y", "ip and (tcp or udp or icmp)", "-T", "fields"]
    for name in fields:
        cmd += ["-o", f"{name}.check_checksum:TRUE"] if name != "icmp" else []
        cmd += ["-e", f"{name}.checksum.status"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    bad = dict.fromkeys(fields, 0)
    for line in out.splitlines():
        for name, value in zip(fields, line.split("\t"), strict=False):
            if value.split(",")[0] == "0":  # 0 = bad, 1 = good, 2 = unverified
                bad[name] += 1
    return bad


def test_foreign_capture_against_tshark(shared_data: Path) -> None:
    """tcpreplay's own test capture, before and after tcprewrite --fixcsum: our checksum counts
    are tshark's (--fixcsum fixes TCP and UDP here, leaves two IP headers and one ICMP)."""
    totals = []
    for name in ("test.pcap", "test.rewrite_fixcsum"):
        pcap = shared_data / "tcpreplay" / name
        report = check_capture(pcap)
        got = _kinds(report)
        assert report.packets == 179
        bad = _tshark_bad(pcap)
        assert sum(bad.values()) > 0
        for proto, count in bad.items():
            assert got.get(f"{proto}_checksum", 0) == count, (name, proto, got, bad)
        totals.append(bad)
    assert totals[0]["tcp"] + totals[0]["udp"] > 0 == totals[1]["tcp"] + totals[1]["udp"]


@pytest.mark.skipif(shutil.which("tcpreplay") is None, reason="tcpreplay is not installed")
def test_foreign_capture_dry_run(shared_data: Path) -> None:
    """A foreign capture through replay --dry-run: checks, tcpprep's auto cache, the command."""
    pcap = shared_data / "tcpreplay" / "test.pcap"
    res = CliRunner().invoke(
        create_cli(load_entrypoints=True),
        ["replay", str(pcap), "-i", "lo", "-I", "lo", "--dry-run", "--json"],
    )
    assert res.exit_code == 1 and "must differ" in res.output
    res = CliRunner().invoke(
        create_cli(load_entrypoints=True),
        ["replay", str(pcap), "-i", "lo", "--topspeed", "--dry-run", "--json"],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["dry_run"] is True and data["packets"] == 0
    assert data["command"][-2:] == ["--topspeed", str(pcap)]
    assert any(w.startswith("ip_checksum") for w in data["warnings"])
