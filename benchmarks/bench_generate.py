"""Generation speed: sample (denoiser) + decode/repair + write pcap, in packets/s.

Loads ``--model DIR`` (default: the bundled model, else trains a small one on IoT SENTINEL
classes), then on each device (cpu, and cuda when present) prints:

- ``sample``: the denoiser alone (chunks of ``--batch`` flows to CPU byte codes);
- ``repair`` / ``write``: one CPU core finishing those chunks (decode + addresses + repair, then
  pcap record bytes + file write), single-threaded;
- ``cpu side xN``: the same chunks finished by the worker pool of N processes, merged in time
  order and written (what the CPU can sustain behind the sampler);
- ``end to end``: ``TrafficModel.generate_records`` into a pcap file, for workers=0 and workers=N
  (sampling overlapped with the pool), and whether both files are byte-identical.

    python benchmarks/bench_generate.py [--model DIR] [--flows N] [--workers N] [--devices cpu,cuda]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

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


def _write_all(records: object, path: Path) -> int:
    from netdiffusion.emit.pcap import PcapWriter

    n = 0
    with PcapWriter(path) as writer:
        for recs in records:  # type: ignore[attr-defined]
            writer.write_records(recs)
            n += recs.n_packets
    return n


def _bench(model_dir: Path, device: str, n_flows: int, steps: int | None, guidance: float | None,
           batch: int, workers: int, out_dir: Path) -> None:  # fmt: skip
    import torch

    from netdiffusion.emit.pcap import PcapWriter, pcap_records
    from netdiffusion.encoding import decode_flows
    from netdiffusion.model import load_model
    from netdiffusion.model import sampling as smp
    from netdiffusion.repair import repair

    model = load_model(model_dir, device=device)
    s = model.default_steps if steps is None else steps
    g = model.default_guidance if guidance is None else guidance
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    flops = model.meta.get("flops_per_packet_step")
    print(
        f"{device}: {n_flows} flows, batch {batch}, steps {s}, guidance {g}, "
        f"{flops} FLOPs/packet/step x {2 if g != 1 else 1} passes"
    )
    # warm-up (kernels, allocator, per-shape primitives: the first chunks' own shapes)
    for _ in model._flow_tensors(
        smp._Run(min(n_flows, 4 * batch), None, s, g, 0, batch, smp.DEFAULT_START_NS)
    ):
        pass
    sync()
    t0 = time.perf_counter()
    fts = list(model._flow_tensors(smp._Run(n_flows, None, s, g, 0, batch, smp.DEFAULT_START_NS)))
    sync()
    t_sample = time.perf_counter() - t0
    packets = sum(ft.n_packets for ft in fts)
    print(f"  sample          {packets / t_sample:>12,.0f} packets/s  ({packets} packets)")

    # one core, in-process: decode + addresses + repair, then records + write
    t_repair = t_write = 0.0
    with PcapWriter(out_dir / f"one_{device}.pcap") as writer:
        for k, ft in enumerate(fts):
            t1 = time.perf_counter()
            t = decode_flows(ft)
            t = smp._assign(t, "10.0.0.0/16", "198.18.0.0/15", 0)
            t, _ = repair(t, synthetic=True, stats=model.stats, seed=k)
            t2 = time.perf_counter()
            writer.write_records(pcap_records(t))
            t3 = time.perf_counter()
            t_repair += t2 - t1
            t_write += t3 - t2
    print(f"  repair (1 core) {packets / t_repair:>12,.0f} packets/s")
    print(f"  write (1 core)  {packets / t_write:>12,.0f} packets/s")

    # the CPU side alone through the pool (sampled chunks replayed), merged and written
    plan = model.plan(n_flows, None, seed=0, start_ns=smp.DEFAULT_START_NS).starts
    limits = [int(plan[k * batch]) for k in range(1, len(fts))] + [None]
    job = smp._Job(model.stats, "10.0.0.0/16", "198.18.0.0/15", 0, 1500, True)
    for w in sorted({0, workers}):
        t0 = time.perf_counter()
        pending: list = []
        with PcapWriter(out_dir / f"cpu_{device}_{w}.pcap") as writer:
            for k, (_ft, recs) in enumerate(smp._finish_all(iter(fts), job, w)):
                out, pending = smp._window_records(pending, recs, limits[k])
                writer.write_records(out)
                if k == 0:  # steady state: from the first result on (pool started)
                    t1, first = time.perf_counter(), fts[0].n_packets
        t2 = time.perf_counter()
        steady = (packets - first) / (t2 - t1) if len(fts) > 1 else float("nan")
        print(
            f"  cpu side x{w:<3}   {steady:>12,.0f} packets/s  (repair + records + merge + write, "
            f"after the first chunk; {packets / (t2 - t0):,.0f}/s with pool start-up)"
        )

    # end to end
    digests = {}
    for w in sorted({0, workers}):
        sync()
        t0 = time.perf_counter()
        path = out_dir / f"e2e_{device}_{w}.pcap"
        n = _write_all(
            model.generate_records(
                n_flows, steps=s, guidance=g, seed=0, batch_size=batch, workers=w
            ),
            path,
        )
        dt = time.perf_counter() - t0
        digests[w] = path.read_bytes()
        print(
            f"  end to end x{w:<3}{n / dt:>12,.0f} packets/s  ({n} packets, {dt:.1f} s, "
            f"sample + repair + write, workers={w})"
        )
    same = len(set(digests.values())) == 1
    print(f"  identical output for workers {sorted(digests)}: {same}")


def main() -> None:
    from netdiffusion.model.sampling import DEFAULT_MODEL_DIR, default_workers

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--flows", type=int, default=None, help="default: 4000 (cpu), 200000 (cuda)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--guidance", type=float, default=None)
    ap.add_argument("--batch", type=int, default=None, help="default: 1024 (cpu), 16384 (cuda)")
    ap.add_argument("--workers", type=int, default=default_workers())
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument(
        "--devices", default=None, help="comma list (default: cpu, and cuda if present)"
    )
    a = ap.parse_args()
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = a.model
        if model_dir is None and (DEFAULT_MODEL_DIR / "netdiffusion.json").is_file():
            model_dir = DEFAULT_MODEL_DIR
            print(f"bundled model {model_dir}")
        if model_dir is None:
            model_dir = _train(Path(tmp) / "model", a.train_steps, a.width, a.layers)
        devices = a.devices.split(",") if a.devices else (
            ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
        )  # fmt: skip
        for dev in devices:
            n = a.flows or (200000 if dev == "cuda" else 4000)
            batch = a.batch or (16384 if dev == "cuda" else 1024)
            _bench(model_dir, dev, n, a.steps, a.guidance, batch, a.workers, Path(tmp))


if __name__ == "__main__":
    main()
