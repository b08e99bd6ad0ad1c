"""Repair throughput: ~1M packets of synthetic traffic (noise headers, realistic sizes), one core.

Prints packets/s for repair alone, the checksum pass alone, and repair + pcap write when the
emitter's writer is installed. Run: ``python benchmarks/bench_repair.py [--packets N]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from netdiffusion import Traffic
from netdiffusion.checksum import fill_checksums
from netdiffusion.repair import repair


def synthetic(n_packets: int, seed: int = 0) -> Traffic:
    """Model-like output: random header bits, flows of 1-40 packets, bimodal payload sizes."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, 41, n_packets // 20 + 1)
    lens = lens[: np.searchsorted(np.cumsum(lens), n_packets) + 1]
    n = int(lens.sum())
    n_flows = len(lens)
    t = Traffic.empty(n)
    t.flow = np.repeat(np.arange(n_flows), lens)
    t.ip[:] = rng.integers(0, 256, t.ip.shape, dtype=np.uint8)
    t.l4[:] = rng.integers(0, 256, t.l4.shape, dtype=np.uint8)
    t.ip[:, 9] = rng.choice([6] * 14 + [17] * 5 + [1], n_flows)[t.flow]
    t.direction = rng.integers(0, 2, n).astype(np.int8)
    addr = rng.integers(0, 256, (n_flows, 2, 4), dtype=np.uint8)
    t.ip[:, 12:16] = addr[t.flow, t.direction]
    t.ip[:, 16:20] = addr[t.flow, 1 - t.direction]
    start = rng.integers(0, 60 * 10**9, n_flows)[t.flow]
    ts = 1_700_000_000 * 10**9 + start + rng.integers(0, 10**9, n)
    t.ts_ns = ts[np.lexsort((ts, t.flow))]  # a decoder emits each flow in time order
    kind = rng.random(n)
    t.payload_len = np.where(
        kind < 0.45, 0, np.where(kind < 0.75, rng.integers(1, 300, n), 1448)
    ).astype(np.int32)
    t.flow_label = np.zeros(n_flows, np.int32)
    t.classes = ["bench"]
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    t = synthetic(args.packets)
    n = t.n_packets
    print(f"{n} packets in {t.n_flows} flows")
    best = float("inf")
    out = t
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        out, report = repair(t, synthetic=True)
        best = min(best, time.perf_counter() - t0)
    mb = out.payload.nbytes / 1e6
    filler = report.payload_filler
    print(f"repair: {n / best:,.0f} packets/s ({best:.2f} s, {mb:.0f} MB payload, {filler})")
    t0 = time.perf_counter()
    fill_checksums(out)
    dt = time.perf_counter() - t0
    print(f"checksums alone: {n / dt:,.0f} packets/s ({dt:.2f} s)")
    t0 = time.perf_counter()
    repair(out, synthetic=False)
    dt = time.perf_counter() - t0
    print(f"repair of real (valid) traffic: {n / dt:,.0f} packets/s ({dt:.2f} s)")
    try:
        from netdiffusion.emit.pcap import write_pcap
    except ImportError:
        return
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bench.pcap"
        t0 = time.perf_counter()
        out, _ = repair(t, synthetic=True)
        write_pcap(out, path)
        dt = time.perf_counter() - t0
        size = os.path.getsize(path) / 1e6
    print(f"repair + write_pcap: {n / dt:,.0f} packets/s ({dt:.2f} s, {size:.0f} MB)")


if __name__ == "__main__":
    main()
