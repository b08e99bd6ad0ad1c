"""Lossless round trip: every Ethernet capture of the shared sets, encoded to a dataset and
decoded without repair, gives back every kept packet's IPv4 and L4 header bytes exactly and its
timestamp within 1 us."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from netdiffusion import Traffic
from netdiffusion.capture import CaptureError, read_capture
from netdiffusion.dataset import load_dataset, save_dataset
from netdiffusion.emit import fill_payloads, write_pcap
from netdiffusion.flows import assemble_flows
from netdiffusion.inputs import expand_captures

ETHERNET = 1


def _ethernet_captures(root: Path) -> Traffic:
    parts = []
    for path in expand_captures([root]):
        try:
            traffic, report = read_capture(path)
        except CaptureError:
            continue
        if report.link_types == [ETHERNET]:
            parts.append(traffic)
    return Traffic.concat(parts)


def _header_bytes(t: Traffic) -> tuple[np.ndarray, np.ndarray]:
    cols = np.arange(60)[None, :]
    ip = np.where(cols < t.ihl_bytes[:, None], t.ip, 0)
    l4 = np.where(cols < t.l4_hdr_len[:, None], t.l4, 0)
    return ip, l4


@pytest.mark.parametrize("dataset", ["iot-sentinel", "ndpi"])
def test_encode_decode_is_lossless(shared_data: Path, tmp_path: Path, dataset: str) -> None:
    original = assemble_flows(_ethernet_captures(shared_data / dataset))
    assert original.n_packets > 10_000
    save_dataset(original, tmp_path / "d.safetensors")
    decoded = fill_payloads(load_dataset(tmp_path / "d.safetensors"))
    write_pcap(decoded, tmp_path / "d.pcap", mtu=None)
    back, report = read_capture(tmp_path / "d.pcap")
    assert back.n_packets == original.n_packets, report.skipped
    ip_o, l4_o = _header_bytes(original)
    ip_b, l4_b = _header_bytes(back)
    assert np.array_equal(ip_o, ip_b)
    assert np.array_equal(l4_o, l4_b)
    assert np.abs(back.ts_ns - original.ts_ns).max() <= 1000
    assert np.array_equal(back.payload_len, original.payload_len)
    print(f"\n{dataset}: {original.n_packets} packets in {original.n_flows} flows round-tripped")


def test_cli_encode_decode_round_trip(shared_data: Path, tmp_path: Path) -> None:
    caps = shared_data / "iot-sentinel" / "captures" / "Aria"
    cli = [sys.executable, "-m", "netdiffusion"]
    run = subprocess.run(
        [*cli, "encode", str(caps), "--labels", "folder", "-o", str(tmp_path / "a.safetensors")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "flows per class: Aria" in run.stdout
    subprocess.run(
        [
            *cli,
            "decode",
            str(tmp_path / "a.safetensors"),
            "--no-repair",
            "-o",
            str(tmp_path / "a.pcap"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    original = _ethernet_captures(caps)
    back, _ = read_capture(tmp_path / "a.pcap")
    assert np.array_equal(_header_bytes(back)[0], _header_bytes(original)[0])
    assert np.array_equal(_header_bytes(back)[1], _header_bytes(original)[1])
