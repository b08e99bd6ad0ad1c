"""Dataset file save/load and nPrint CSV export."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from netdiffusion import Traffic
from netdiffusion.capture import read_capture
from netdiffusion.dataset import (
    FORMAT_VERSION,
    DatasetError,
    load_dataset,
    read_schema,
    save_dataset,
    write_nprint_csv,
)
from netdiffusion.encoding import packet_bits
from netdiffusion.flows import assemble_flows
from netdiffusion.nprint import N_BITS, csv_header

SAMPLES = [
    "iot-sentinel/captures/Aria/Setup-C-6-STA.pcap",
    "iot-sentinel/captures/TP-LinkPlugHS110/Setup-A-1-STA.pcap",
    "ndpi/pcap/1kxun.pcap",
    "ndpi/pcap/alexa-app.pcapng",
    "ndpi/pcap/dns_fragmented.pcap",
]
COLUMNS = ["ts_ns", "ip", "l4", "payload_len", "mac", "flow", "direction", "file", "flow_label"]


def _real(shared_data: Path) -> Traffic:
    parts = [read_capture(shared_data / n)[0] for n in SAMPLES if (shared_data / n).exists()]
    if not parts:
        pytest.skip("sample captures missing")
    t = assemble_flows(Traffic.concat(parts))
    t.classes = ["iot", "web"]
    t.flow_label[:] = np.arange(t.n_flows) % 2
    return t


def test_save_load_round_trip_is_exact(shared_data: Path, tmp_path: Path) -> None:
    t = _real(shared_data)
    path = tmp_path / "train.safetensors"
    save_dataset(t, path, extra={"note": "x"})
    u = load_dataset(path)
    for name in COLUMNS:
        a, b = getattr(t, name), getattr(u, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert u.classes == t.classes and u.files == t.files
    assert u.payload.size == 0 and np.array_equal(u.payload_off, np.zeros(t.n_packets + 1))
    schema = read_schema(path)
    assert schema["version"] == FORMAT_VERSION and schema["note"] == "x"
    assert schema["n_packets"] == t.n_packets and schema["nprint"]["n_bits"] == N_BITS
    assert sum(w for blk in schema["nprint"]["blocks"] for _n, w in blk["fields"]) == N_BITS
    assert not list(tmp_path.glob(".*.tmp"))


def test_payload_stored_on_request(shared_data: Path, tmp_path: Path) -> None:
    t = _real(shared_data)
    assert t.payload.size > 0
    path = tmp_path / "p.safetensors"
    save_dataset(t, path, store_payload=True)
    u = load_dataset(path)
    assert np.array_equal(u.payload, t.payload) and np.array_equal(u.payload_off, t.payload_off)


def test_empty_traffic_round_trip(tmp_path: Path) -> None:
    save_dataset(Traffic.empty(), tmp_path / "e.safetensors")
    u = load_dataset(tmp_path / "e.safetensors")
    assert u.n_packets == 0 and u.ip.shape == (0, 60)


def test_foreign_and_wrong_version_files_are_refused(shared_data: Path, tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    pcap = shared_data / SAMPLES[0]
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01not a dataset" * 10)
    plain = tmp_path / "plain.safetensors"
    save_file({"a": np.zeros(3, np.int64)}, str(plain))
    old = tmp_path / "old.safetensors"
    schema = {"format": "netdiffusion-dataset", "version": FORMAT_VERSION + 1}
    save_file({"a": np.zeros(3, np.int64)}, str(old), metadata={"netdiffusion": json.dumps(schema)})
    for path, reason in [
        (pcap, "not a netdiffusion dataset"),
        (junk, "not a netdiffusion dataset"),
        (plain, "no netdiffusion schema"),
        (old, "format version"),
        (tmp_path / "missing.safetensors", "no such file"),
    ]:
        with pytest.raises(DatasetError) as info:
            load_dataset(path)
        msg = str(info.value)
        assert str(path) in msg and reason in msg and "\n" not in msg


def test_nprint_csv_matches_nprint_layout(shared_data: Path, tmp_path: Path) -> None:
    t = _real(shared_data)
    # one packet that nPrint does not write (protocol 47)
    odd = t.take(np.array([0]))
    odd.ip[0, 9] = 47
    t = Traffic.concat([t, odd])
    out = tmp_path / "x.csv"
    n = write_nprint_csv(t, out, relative_timestamps=True)
    written = np.isin(t.proto, (1, 6, 17))
    assert n == int(written.sum()) == t.n_packets - 1
    text = out.read_text()
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == n + 2
    assert lines[0] + "\n" == csv_header(relative_timestamps=True)
    rows = [line.split(",") for line in lines[1:-1]]
    assert all(len(r) == N_BITS + 2 for r in rows)
    src = t.ip[written, 12:16]
    assert [r[0] for r in rows] == [".".join(str(int(v)) for v in a) for a in src]
    us = t.ts_ns[written] // 1000
    assert [int(r[1]) for r in rows] == [0, *np.diff(us).tolist()]
    values = np.array([r[2:] for r in rows], dtype=np.int8)
    assert np.array_equal(values, packet_bits(t)[written])


def test_nprint_csv_source_column_agrees_with_tshark(shared_data: Path, tmp_path: Path) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    path = shared_data / SAMPLES[0]
    if not path.exists():
        pytest.skip("sample capture missing")
    t, _ = read_capture(path)
    write_nprint_csv(t, tmp_path / "a.csv")
    ours = [line.split(",", 1)[0] for line in (tmp_path / "a.csv").read_text().splitlines()[1:]]
    cmd = [tshark, "-r", str(path), "-Y", "ip && (tcp || udp || icmp)", "-T", "fields"]
    cmd += ["-E", "occurrence=f", "-e", "ip.src"]
    theirs = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    assert ours == theirs
