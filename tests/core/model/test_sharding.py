"""Generation sharded across processes: results travel without pickle, and ``accelerate launch``
with two processes writes exactly what one process writes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]


def test_pack_round_trips_traffic_and_records(tiny_model_dir: Path) -> None:
    from netdiffusion.emit.pcap import pcap_records
    from netdiffusion.model import load_model
    from netdiffusion.model.sharding import pack, unpack

    t = load_model(tiny_model_dir, device="cpu").generate(40, seed=3)
    assert t.n_packets > 0
    back = unpack(pack(t))
    for name in ("ts_ns", "ip", "l4", "payload", "payload_off", "mac", "flow", "direction"):
        a, b = getattr(t, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert back.classes == t.classes and back.files == t.files
    assert np.array_equal(back.flow_label, t.flow_label)

    recs = pcap_records(t)
    rb = unpack(pack(recs))
    assert rb.nanosecond == recs.nanosecond
    assert np.array_equal(rb.ends, recs.ends) and np.array_equal(rb.ts_ns, recs.ts_ns)
    assert bytes(rb.data[: rb.nbytes]) == bytes(recs.data[: recs.nbytes])
    with pytest.raises(TypeError):
        pack(np.zeros(3))  # type: ignore[arg-type]


def test_single_process_is_one_shard() -> None:
    from netdiffusion.model.sharding import Shard, current_shard

    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        pytest.skip("the test itself runs under a multi-process launch")
    s = current_shard()
    assert s == Shard() and s.is_main and all(s.owns(k) for k in range(5))
    two = Shard(1, 2)
    assert [k for k in range(6) if two.owns(k)] == [1, 3, 5] and not two.is_main


@pytest.mark.parametrize("suffix", ["pcap", "pcapng"])
def test_accelerate_launch_generates_what_one_process_does(
    tiny_model_dir: Path, tmp_path: Path, suffix: str
) -> None:
    exe = shutil.which("accelerate")
    if exe is None:
        pytest.skip("accelerate is not installed")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("WORLD_SIZE", None)
    args = ["--model", str(tiny_model_dir), "--flows", "240", "--batch-size", "32", "--seed", "5"]
    one = tmp_path / f"one.{suffix}"
    two = tmp_path / f"two.{suffix}"
    single = [sys.executable, "-m", "netdiffusion", "generate", *args, "-o", str(one)]
    proc = subprocess.run(single, capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    launch = [
        # accelerate 1.x: ``--multi_gpu`` on a machine without CUDA is a gloo CPU launch
        exe, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "netdiffusion", "generate", *args, "-o", str(two),
    ]  # fmt: skip
    proc = subprocess.run(launch, capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("packets written") == 1  # rank 0 alone writes and reports
    assert one.read_bytes() == two.read_bytes()
    assert one.stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([one.name, two.name])
