"""The diffusion model: a tiny model trained on real captures generates valid, reproducible
traffic; model directories load offline and refuse what is not a model; checkpoints resume;
``accelerate launch`` trains data-parallel."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

CLASSES = ["Aria", "D-LinkDayCam", "EdnetGateway"]  # TCP + UDP + ICMP between them
TINY = {"width": 32, "layers": 1, "heads": 2}
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def traffic(tiny_traffic):
    return tiny_traffic


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir: Path) -> Path:
    return tiny_model_dir


def test_model_directory_layout(model_dir: Path) -> None:
    for name in (
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "scheduler/scheduler_config.json",
        "netdiffusion.json",
        "README.md",
    ):
        assert (model_dir / name).is_file(), name
    meta = json.loads((model_dir / "netdiffusion.json").read_text())
    assert meta["classes"] == CLASSES
    assert abs(sum(meta["class_proportions"].values()) - 1) < 1e-9
    assert set(meta["repair_stats"]["ttl_modes"]) <= set(CLASSES)
    # flows of a validation file never appear among the training files
    assert not set(meta["data"]["val_files"]) & set(meta["data"]["train_files"])
    assert "| Aria |" in (model_dir / "README.md").read_text()
    # no pickle anywhere in the directory
    for path in model_dir.rglob("*"):
        if path.is_file():
            assert not path.read_bytes().startswith(b"\x80"), path


def test_generated_traffic_is_valid(model_dir: Path, tmp_path: Path) -> None:
    from netdiffusion.capture import read_capture
    from netdiffusion.checksum import checksum_ok
    from netdiffusion.emit import write_pcap
    from netdiffusion.model import load_model

    model = load_model(model_dir, device="cpu")
    traffic = model.generate(300, seed=1, batch_size=64)
    assert traffic.n_flows > 250 and traffic.n_packets >= traffic.n_flows
    assert set(np.unique(traffic.proto)) <= {1, 6, 17}
    out = tmp_path / "gen.pcap"
    write_pcap(traffic, out)
    back, _report = read_capture(out)
    assert back.n_packets == traffic.n_packets
    ok = checksum_ok(back)
    assert ok["ip"].all() and ok["l4"].all() and ok["l4_checked"].all()
    assert (np.diff(back.ts_ns) >= 0).all()
    # classes in about the training proportions, each with its own flows
    labels = [traffic.classes[i] for i in traffic.flow_label]
    assert set(labels) == set(CLASSES)


def test_same_seed_same_bytes(model_dir: Path, tmp_path: Path) -> None:
    from netdiffusion.emit import write_pcap
    from netdiffusion.model import load_model

    model = load_model(model_dir, device="cpu")
    blobs = []
    for i, seed in enumerate((7, 7, 8)):
        write_pcap(model.generate(80, seed=seed, batch_size=32), tmp_path / f"{i}.pcap")
        blobs.append((tmp_path / f"{i}.pcap").read_bytes())
    assert blobs[0] == blobs[1]
    assert blobs[0] != blobs[2]
    again = load_model(model_dir, device="cpu")
    write_pcap(again.generate(80, seed=7, batch_size=32), tmp_path / "3.pcap")
    assert (tmp_path / "3.pcap").read_bytes() == blobs[0]


def test_batches_stream_in_time_order(model_dir: Path) -> None:
    from netdiffusion.model import load_model

    model = load_model(model_dir, device="cpu")
    parts = list(model.generate_batches(150, seed=2, batch_size=40))
    assert len(parts) == 4
    ts = np.concatenate([p.ts_ns for p in parts])
    assert (np.diff(ts) >= 0).all()
    whole = model.generate(150, seed=2, batch_size=40)
    assert whole.n_packets == len(ts) and whole.n_flows == 150


def test_class_request_and_sample(model_dir: Path) -> None:
    from netdiffusion.encoding import N_FEATURES, decode_flows
    from netdiffusion.model import ModelError, load_model

    model = load_model(model_dir, device="cpu")
    t = model.generate(40, classes={"EdnetGateway": 1.0}, seed=3)
    assert {t.classes[i] for i in t.flow_label} == {"EdnetGateway"}
    with pytest.raises(ModelError, match="unknown class 'nope'"):
        model.generate(5, classes=["nope"])
    tensor, mask, labels = next(model.sample(20, classes=["Aria", "EdnetGateway"], seed=0))
    assert tensor.shape == (20, model.max_packets, N_FEATURES) and tensor.dtype == np.float32
    assert mask.shape == (20, model.max_packets) and mask[:, 0].all()
    assert set(np.unique(tensor[..., :1088])) <= {-1.0, 0.0, 1.0}
    assert (tensor[~mask][:, :1088] == -1).all()
    decoded = decode_flows(tensor, mask=mask, labels=labels, classes=model.classes)
    assert decoded.n_packets == int(mask.sum())


def test_planned_lengths_hold_the_training_mix_up_to_rounding(model_dir: Path) -> None:
    from netdiffusion.model import load_model

    model = load_model(model_dir, device="cpu")
    pmf = np.diff(model._length_cdf, axis=1, prepend=0.0)
    for seed in (0, 1):
        plan = model.plan(1000, classes={"Aria": 0.7, "EdnetGateway": 0.3}, seed=seed)
        for name, n in (("Aria", 700), ("EdnetGateway", 300)):
            c = model.classes.index(name)
            got = np.bincount(plan.lengths[plan.labels == c] - 1, minlength=model.max_packets)
            # stratified draws: each length within 2 of its expected count (iid draws of 1000
            # flows stray by about the square root of the count)
            assert np.abs(got - n * pmf[c]).max() <= 2, (got, n * pmf[c])
    again = model.plan(1000, classes={"Aria": 0.7, "EdnetGateway": 0.3}, seed=1)
    assert np.array_equal(again.lengths, plan.lengths)  # deterministic in the seed


def test_not_a_model_is_one_line_error(tmp_path: Path, model_dir: Path) -> None:
    from netdiffusion.model import ModelError, load_model

    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    for path, reason in (
        (tmp_path / "empty", "not a netdiffusion model"),
        (tmp_path / "file.txt", "not a model directory"),
        (tmp_path / "missing", "no such model directory"),
        (broken, "cannot load the model weights"),
    ):
        with pytest.raises(ModelError) as err:
            load_model(path, device="cpu")
        assert reason in str(err.value) and "\n" not in str(err.value)


def test_no_network(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from netdiffusion.model import load_model

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    model = load_model(model_dir, device="cpu")
    assert model.generate(10, seed=0).n_flows == 10


def test_feature_layout_round_trip(traffic) -> None:
    from netdiffusion.encoding import encode_flows
    from netdiffusion.model.features import FeatureLayout

    ft = encode_flows(traffic, max_packets=16)
    layout = FeatureLayout.learn(ft)
    again = FeatureLayout.from_json(json.loads(json.dumps(layout.to_json())))
    assert (again.active == layout.active).all() and (again.constants == layout.constants).all()
    # addresses, checksums and sequence numbers are never learned
    assert not np.isin(layout.active, np.r_[96:160, 80:96, 512:544, 608:624]).any()
    packed = layout.packed(ft)
    dense = layout.from_encoder(ft.features(slice(0, 50)), ft.dense(slice(0, 50))[3])
    n0 = int(ft.lengths[:50].sum())
    real = dense[ft.dense(slice(0, 50))[3]]
    iat_col = layout.n_active_bits + 4
    exact = np.ones(layout.n_features, bool)
    exact[iat_col] = False
    assert np.array_equal(real[:, exact], packed[:n0, exact].astype(np.float32))
    assert np.allclose(real[:, iat_col], packed[:n0, iat_col].astype(np.float32), atol=2e-3)


def test_inter_arrival_bits_round_trip(traffic) -> None:
    import torch

    from netdiffusion.encoding import encode_flows
    from netdiffusion.model import ModelError
    from netdiffusion.model.features import DEFAULT_IAT_BITS, IAT_BITS_TOLERANCE, FeatureLayout

    ft = encode_flows(traffic, max_packets=16)
    layout = FeatureLayout.learn(ft)
    assert layout.iat_bits == DEFAULT_IAT_BITS
    assert layout.n_features == layout.n_active_bits + 5 + DEFAULT_IAT_BITS
    again = FeatureLayout.from_json(json.loads(json.dumps(layout.to_json())))
    assert again.iat_bits == layout.iat_bits and again.n_features == layout.n_features
    # format 1 layouts (models made before the bits) load without them
    old = {**layout.to_json(), "format": 1}
    old.pop("iat_bits")
    assert FeatureLayout.from_json(old).iat_bits == 0
    with pytest.raises(ModelError, match=r"not in 0\.\.24"):
        FeatureLayout.learn(ft, iat_bits=30)

    x = torch.as_tensor(layout.packed(ft).astype(np.float32))
    tables = layout.tables(torch.device("cpu"))
    truth = ft.iat.astype(np.float64)
    a = layout.n_active_bits
    # the continuous feature a little off: the bits give the gap to within one level
    x[:, a + 4] += 0.004
    iat = layout.to_bits(x, tables)[2].numpy()
    assert np.abs(iat - truth).max() <= 1.0 / 2**DEFAULT_IAT_BITS
    # the bits far from the continuous feature: the continuous feature wins
    x[:, a + 4] = 2 * torch.as_tensor(truth, dtype=torch.float32) - 1 + 4 * IAT_BITS_TOLERANCE
    iat = layout.to_bits(x, tables)[2].numpy()
    assert np.allclose(iat, np.clip(truth + 2 * IAT_BITS_TOLERANCE, 0, None), atol=1e-5)
    # a layout without bits reads the continuous feature alone
    plain = FeatureLayout.learn(ft, iat_bits=0)
    xp = torch.as_tensor(plain.packed(ft).astype(np.float32))
    iat = plain.to_bits(xp, plain.tables(torch.device("cpu")))[2].numpy()
    assert np.allclose(iat, truth, atol=2e-3)


def test_loss_weights_name_feature_groups(traffic, tmp_path: Path) -> None:
    from netdiffusion.encoding import encode_flows
    from netdiffusion.model import ModelError, train_model
    from netdiffusion.model.features import FeatureLayout

    layout = FeatureLayout.learn(encode_flows(traffic, max_packets=16))
    a = layout.n_active_bits
    w = layout.loss_weights({"direction": 8, "ip_length": 4})
    assert w.shape == (layout.n_features,) and abs(float(w.mean()) - 1) < 1e-6
    length_bits = (layout.active >= 16) & (layout.active < 32)
    assert length_bits.any()
    assert w[a + 3] == pytest.approx(2 * w[:a][length_bits][0])  # direction 8, length bits 4
    assert w[a + 4] == pytest.approx(w[0])  # unnamed features keep the base weight
    assert (layout.loss_weights(None) == 1).all()
    with pytest.raises(ModelError, match="unknown feature group 'nope'"):
        layout.loss_weights({"nope": 2})
    # a weighted model trains, records its weights, and generates
    kw = {"max_packets": 16, "config": TINY, "batch_size": 16, "progress": False}
    train_model(traffic, tmp_path / "w", steps=10, feature_weights={"direction": 8}, **kw)
    meta = json.loads((tmp_path / "w" / "netdiffusion.json").read_text())
    assert meta["training"]["feature_weights"] == {"direction": 8}


def test_resume_continues_step_count(traffic, tmp_path: Path) -> None:
    from netdiffusion.model import train_model

    out = tmp_path / "m"
    kw = {"max_packets": 16, "config": TINY, "batch_size": 16, "progress": False}
    first = train_model(traffic, out, steps=30, checkpoint_every=15, **kw)
    assert first.resumed_from == 0
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["step"] == 30
    second = train_model(traffic, out, steps=60, checkpoint_every=15, resume=True, **kw)
    assert second.resumed_from == 30 and second.history[-1][0] == 60
    meta = json.loads((out / "netdiffusion.json").read_text())
    assert meta["training"]["resumed_from"] == 30


def test_time_limit_cuts_the_step_count(traffic, tmp_path: Path) -> None:
    from netdiffusion.model import ModelError, train_model
    from netdiffusion.model.training import TIME_PROBE_STEPS, TIME_WARMUP_STEPS

    kw = {"max_packets": 16, "config": TINY, "batch_size": 16, "progress": False}
    result = train_model(traffic, tmp_path / "t", steps=1_000_000, time_limit=6.0, **kw)
    probe = TIME_WARMUP_STEPS + TIME_PROBE_STEPS
    assert probe <= result.steps < 1_000_000
    if result.steps > probe:  # the timed steps left room: the run kept to its limit
        assert result.seconds < 6.0 * 1.25  # (the pace may drift on a busy machine)
    meta = json.loads((tmp_path / "t" / "netdiffusion.json").read_text())["training"]
    assert meta["steps"] == result.steps and meta["planned_steps"] == 1_000_000
    assert meta["time_limit"] == 6.0 and meta["history"][-1][0] <= result.steps
    # a run that fits its limit keeps its steps and records no plan
    short = train_model(traffic, tmp_path / "s", steps=30, time_limit=600.0, iat_bits=0, **kw)
    assert short.steps == 30
    full = json.loads((tmp_path / "s" / "netdiffusion.json").read_text())
    assert "planned_steps" not in full["training"]
    assert full["layout"]["iat_bits"] == 0  # and the bits can be left out
    assert json.loads((tmp_path / "t" / "netdiffusion.json").read_text())["layout"]["iat_bits"]
    with pytest.raises(ModelError, match="time limit must be positive"):
        train_model(traffic, tmp_path / "x", steps=5, time_limit=0.0, **kw)


def test_importing_netdiffusion_does_not_import_torch() -> None:
    code = (
        "import sys, netdiffusion, netdiffusion.cli, netdiffusion.model; "
        "from netdiffusion.model import ModelError; "
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_accelerate_launch_two_cpu_processes(shared_data: Path, tmp_path: Path) -> None:
    exe = shutil.which("accelerate")
    if exe is None:
        pytest.skip("accelerate is not installed")
    base = shared_data / "iot-sentinel" / "captures"
    out = tmp_path / "ddp"
    cmd = [
        # accelerate 1.x runs ``--cpu`` with several processes only through mpirun; its
        # torch.distributed launcher (``--multi_gpu``) gives a gloo MULTI_CPU run on a CPU machine
        exe, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "netdiffusion.model.training",
        *[str(base / c) for c in CLASSES], "-o", str(out), "--steps", "20",
        "--batch-size", "8", "--width", "32", "--layers", "1", "--heads", "2",
        "--max-packets", "16", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((out / "netdiffusion.json").read_text())
    assert meta["training"]["processes"] == 2
    from netdiffusion.model import load_model

    assert load_model(out, device="cpu").generate(5, seed=0).n_flows == 5
