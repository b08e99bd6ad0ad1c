"""Generation speed end to end: sample (denoiser) + decode/repair + write_pcap, in packets/s.

Trains a small model on IoT SENTINEL classes (or loads ``--model DIR``), then generates
``--flows`` flows on each device (cpu, and cuda when present) and prints packets/s for the whole
pipeline with the sampling, repair (decode, addresses, repair) and write shares separately.

    python benchmarks/bench_generate.py [--model DIR] [--flows N] [--steps K] [--guidance G]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "iot-sentinel" / "captures"
CLASSES = ["Aria", "HueSwitch", "D-LinkDayCam", "EdnetGateway", "WeMoLink", "TP-LinkPlugHS110"]


def _train(out: Path, steps: int, width: int, layers: int) -> Path:
    from netdiffusion.flows import assemble_flows
    from netdiffusion.inputs import expand_captures, read_captures
    from netdiffusion.labels import label_by_folder
    from netdiffusion.model import train_model

    if not SHARED.is_dir():
        sys.exit(f"no shared captures at {SHARED}; pass --model DIR")
    files = expand_captures([SHARED / c for c in CLASSES])
    traffic, _ = read_captures(files, keep_payload=False, progress=False)
    traffic, _ = label_by_folder(assemble_flows(traffic))
    t0 = time.perf_counter()
    res = train_model(
        traffic, out, steps=steps, batch_size=64,
        config={"width": width, "layers": layers}, progress=False,
    )  # fmt: skip
    print(f"trained {steps} steps in {time.perf_counter() - t0:.1f} s (loss {res.final_loss:.3f})")
    return out


def _bench(model_dir: Path, device: str, n_flows: int, steps: int | None, guidance: float | None,
           batch: int, out_dir: Path) -> None:  # fmt: skip
    import torch

    from netdiffusion.emit import write_pcap
    from netdiffusion.encoding import decode_flows
    from netdiffusion.model import load_model
    from netdiffusion.model.sampling import _assign
    from netdiffusion.repair import repair

    model = load_model(model_dir, device=device)
    s = model.default_steps if steps is None else steps
    g = model.default_guidance if guidance is None else guidance
    # warm-up (kernels, allocator)
    for _ in model._flow_tensors(min(n_flows, 256), None, s, g, 99, batch, 0):
        pass
    t_sample = t_repair = t_write = 0.0
    packets = 0
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    for k, ft in enumerate(model._flow_tensors(n_flows, None, s, g, 0, batch, 0)):
        sync()
        t1 = time.perf_counter()
        t = decode_flows(ft)
        t = _assign(t, "10.0.0.0/16", "198.18.0.0/15", 0)
        t, _ = repair(t, synthetic=True, stats=model.stats, seed=k)
        t2 = time.perf_counter()
        write_pcap(t, out_dir / f"bench_{device}_{k}.pcap")
        t3 = time.perf_counter()
        t_sample += t1 - t0
        t_repair += t2 - t1
        t_write += t3 - t2
        packets += t.n_packets
        t0 = time.perf_counter()
    total = time.perf_counter() - t_all
    flops = model.meta.get("flops_per_packet_step")
    print(
        f"{device}: {n_flows} flows, {packets} packets, steps {s}, guidance {g}: "
        f"{packets / total:,.0f} packets/s end to end "
        f"(sample {packets / t_sample:,.0f}/s = {t_sample / total:.0%}, "
        f"repair {packets / t_repair:,.0f}/s = {t_repair / total:.0%}, "
        f"write {packets / t_write:,.0f}/s = {t_write / total:.0%}); "
        f"{flops} FLOPs/packet/step x {s} steps x {2 if g != 1 else 1} passes"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--flows", type=int, default=20000)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--guidance", type=float, default=None)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument(
        "--devices", default=None, help="comma list (default: cpu, and cuda if present)"
    )
    a = ap.parse_args()
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = a.model or _train(Path(tmp) / "model", a.train_steps, a.width, a.layers)
        devices = a.devices.split(",") if a.devices else (
            ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
        )  # fmt: skip
        for dev in devices:
            n = a.flows if dev == "cpu" else max(a.flows, 200000)
            _bench(model_dir, dev, n, a.steps, a.guidance, a.batch, Path(tmp))
    np.random.seed(0)


if __name__ == "__main__":
    main()
