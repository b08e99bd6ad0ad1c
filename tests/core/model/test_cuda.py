"""The CUDA path (bf16 autocast): training and generation on a GPU give valid, reproducible
traffic. Skipped without CUDA; `benchmarks/gpu_check.sh` runs it on a lent GPU machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

CLASSES = ["D-LinkCam", "EdnetGateway", "Lightify"]


@pytest.fixture(scope="module")
def cuda_model(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from netdiffusion.flows import assemble_flows
    from netdiffusion.inputs import expand_captures, read_captures
    from netdiffusion.labels import label_by_folder
    from netdiffusion.model import train_model

    base = shared_data / "iot-sentinel" / "captures"
    if not all((base / c).is_dir() for c in CLASSES):
        pytest.skip("IoT SENTINEL captures not found")
    traffic, _ = read_captures(expand_captures([base / c for c in CLASSES]), progress=False)
    traffic = label_by_folder(assemble_flows(traffic))[0]
    out = tmp_path_factory.mktemp("cuda") / "model"
    train_model(traffic, out, max_packets=16, config={"width": 64, "layers": 2}, steps=300,
                batch_size=128, seed=0, progress=False)  # fmt: skip
    return out


def test_cuda_generation_is_valid_and_reproducible(cuda_model: Path, tmp_path: Path) -> None:
    from netdiffusion.capture import read_capture
    from netdiffusion.checksum import checksum_ok
    from netdiffusion.emit import write_pcap
    from netdiffusion.model import load_model

    model = load_model(cuda_model, device="cuda")
    a = model.generate(2000, seed=3)
    b = model.generate(2000, seed=3)
    write_pcap(a, tmp_path / "a.pcap")
    write_pcap(b, tmp_path / "b.pcap")
    assert (tmp_path / "a.pcap").read_bytes() == (tmp_path / "b.pcap").read_bytes()
    back, _ = read_capture(tmp_path / "a.pcap")
    ok = checksum_ok(back)
    assert back.n_packets > 2000 and ok["ip"].all() and ok["l4"].all()
    assert (np.diff(back.ts_ns) >= 0).all()
    assert set(a.classes) == set(CLASSES)


def test_cuda_model_loads_and_generates_on_cpu(cuda_model: Path) -> None:
    from netdiffusion.checksum import checksum_ok
    from netdiffusion.model import load_model

    t = load_model(cuda_model, device="cpu").generate(200, seed=1)
    ok = checksum_ok(t)
    assert t.n_flows == 200 and ok["ip"].all() and ok["l4"].all()
