"""Where the sampler's time goes: one chunk of ``TrafficModel._denoise_chunk`` under
``torch.profiler``, printing the wall time, the device's busy time and the top operators.

    python benchmarks/profile_sampler.py [--model DIR] [--device cuda] [--batch 16384] [--top 15]

A wall time well above the device's busy time means the sampler waits on the host (kernel
launches, syncs, host-side numpy); the operator table says which.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from netdiffusion.model import load_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=None, help="flows (16384 cuda, 1024 cpu)")
    ap.add_argument("--top", type=int, default=15)
    a = ap.parse_args()
    model = load_model(a.model, device=a.device)
    cuda = model.device.type == "cuda"
    n = a.batch or (16384 if cuda else 1024)
    plan = model.plan(3 * n, None, seed=0)  # three chunks of different shapes, as in a run
    steps, guidance = model.default_steps, model.default_guidance
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def chunk(k: int) -> int:
        part = slice(k * n, (k + 1) * n)
        labels, lengths = plan.labels[part], plan.lengths[part]
        codes, _d, _i, _ = model._denoise_chunk(labels, lengths, steps, guidance, 0, k)
        return len(codes)

    chunk(0)  # warm-up
    sync()
    t0 = time.perf_counter()
    packets = chunk(1)
    sync()
    wall = time.perf_counter() - t0
    print(f"{model.device}: {n} flows, {packets} packets, {steps} steps: {wall * 1e3:.1f} ms")
    print(f"  {packets / wall:,.0f} packets/s (one chunk, denoiser + snap + copy to host)")
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        chunk(2)
        sync()
    events = prof.key_averages()
    if cuda:
        busy = sum(e.self_device_time_total for e in events) / 1e3
        print(f"  device busy {busy:.1f} ms of the chunk (profiled run; profiling adds overhead)")
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(events.table(sort_by=key, row_limit=a.top, max_name_column_width=48))


if __name__ == "__main__":
    main()
