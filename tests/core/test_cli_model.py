"""`netdiffusion train` and `generate` end to end through the CLI, on a tiny model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from netdiffusion.capture import read_capture
from netdiffusion.checksum import checksum_ok
from netdiffusion.dataset import load_dataset
from netdiffusion.nprint import csv_header

CLI = [sys.executable, "-m", "netdiffusion"]
CLASSES = ["Lightify", "EdnetGateway"]


def _run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def model(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    caps = [str(shared_data / "iot-sentinel" / "captures" / c) for c in CLASSES]
    out = tmp_path_factory.mktemp("cli") / "model"
    run = _run("train", *caps, "--labels", "folder", "-o", str(out), "--steps", "40",
               "--width", "32", "--layers", "1", "--max-packets", "16")  # fmt: skip
    assert "model written to" in run.stdout
    assert (out / "netdiffusion.json").is_file() and (out / "README.md").is_file()
    return out


def test_generate_pcap_is_valid_and_has_the_classes(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.pcap"
    run = _run("generate", "--model", str(model), "--flows", "300", "--seed", "4", "-o", str(out))
    assert "packets written" in run.stdout
    t, report = read_capture(out)
    ok = checksum_ok(t)
    assert t.n_packets >= 300 and ok["ip"].all() and ok["l4"].all() and not report.skipped
    assert (np.diff(t.ts_ns) >= 0).all()


def test_generate_other_formats_and_packet_budget(model: Path, tmp_path: Path) -> None:
    _run("generate", "--model", str(model), "--class", "Lightify", "--packets", "500",
         "-o", str(tmp_path / "g.pcapng"))  # fmt: skip
    t, _ = read_capture(tmp_path / "g.pcapng")
    assert t.n_packets == 500
    _run("generate", "--model", str(model), "--flows", "50", "-o", str(tmp_path / "g.csv"))
    lines = (tmp_path / "g.csv").read_text().splitlines()
    assert lines[0] == csv_header().rstrip("\n") and len(lines) > 50
    _run("generate", "--model", str(model), "--flows", "50", "-o", str(tmp_path / "g.safetensors"))
    data = load_dataset(tmp_path / "g.safetensors")
    assert data.n_flows >= 50 and set(data.classes) <= set(CLASSES)


def test_packet_budget_is_met_by_the_bundled_model(tmp_path: Path) -> None:
    """``--packets N`` plans enough flows for N packets from the model's own flow lengths
    (the bundled model's flows are short: about 7.6 packets planned, fewer after repair)."""
    out = tmp_path / "budget.pcap"
    _run("generate", "--packets", "2500", "--class", "HueBridge", "--seed", "3", "-o", str(out))
    t, _ = read_capture(out)
    assert t.n_packets == 2500


def test_generate_bad_input_is_one_line(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.pcap"
    run = _run("generate", "--model", str(model), "--class", "Nope", "-o", str(out), ok=False)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert [ln for ln in run.stderr.splitlines() if ln.startswith("Error")], run.stderr
    assert not out.exists()
    run = _run("generate", "--model", str(tmp_path), "-o", str(out), ok=False)
    assert run.returncode != 0 and "Traceback" not in run.stderr and not out.exists()
