"""Encode throughput on one core: capture -> flows -> flow tensor -> dataset file, and nPrint CSV.

For the IoT SENTINEL and nDPI sets (under ../shared/data; a missing set is skipped), prints
packets/s for each stage and for the whole encode (read every capture, assemble flows, encode the
flow tensor, write the safetensors dataset), then for the nPrint CSV export
(``nprint -4 -t -u -i`` layout) and for decoding the flow tensor back to header bytes. Targets:
encode >= 500,000 packets/s; CSV > 200,000 packets/s (nPrint's own tool: ~20,000 packets/s).

    python benchmarks/bench_encode.py [--repeat 3] [--max-packets 64] [--out DIR]

``--out`` is where the dataset and CSV are written (default: a temporary directory; pass a
directory on the disk you care about, since the CSV is ~3 KB per packet and is fsynced).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from netdiffusion import Traffic
from netdiffusion.dataset import save_dataset, write_nprint_csv
from netdiffusion.encoding import decode_flows, encode_flows
from netdiffusion.flows import assemble_flows
from netdiffusion.inputs import read_captures

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {
    "iot-sentinel": ("iot-sentinel/captures", ("*.pcap",)),
    "ndpi": ("ndpi/pcap", ("*.pcap", "*.pcapng", "*.cap")),
}
T = TypeVar("T")


def _files(root: Path, patterns: tuple[str, ...]) -> list[Path]:
    return sorted({p for pat in patterns for p in root.rglob(pat) if p.is_file()})


def _read(files: list[Path]) -> Traffic:
    """What `netdiffusion encode` reads: every file, headers only (no payload bytes)."""
    traffic, _ = read_captures(files, keep_payload=False, progress=False)
    return traffic


def _best(repeat: int, fn: Callable[[], T]) -> tuple[float, T]:
    t0 = time.perf_counter()
    out = fn()
    best = time.perf_counter() - t0
    for _ in range(repeat - 1):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _line(label: str, packets: int, seconds: float) -> None:
    rate = packets / seconds if seconds > 0 else float("inf")
    print(f"  {label:<34} {packets:>9,} packets {seconds * 1000:>9.1f} ms {rate:>13,.0f} packets/s")


def bench_set(name: str, files: list[Path], repeat: int, max_packets: int, out: Path) -> None:
    print(f"{name}: {len(files)} files")
    t_read, traffic = _best(repeat, lambda: _read(files))
    n = traffic.n_packets
    t_flows, flows = _best(repeat, lambda: assemble_flows(traffic))
    t_enc, tensor = _best(repeat, lambda: encode_flows(flows, max_packets=max_packets))
    path = out / f"{name}.safetensors"
    t_save, _ = _best(repeat, lambda: save_dataset(flows, path))
    _line("read captures", n, t_read)
    _line("assemble flows", n, t_flows)
    _line(f"encode flow tensor (P={max_packets})", n, t_enc)
    _line("write dataset", n, t_save)
    _line("ENCODE total (read+flows+dataset)", n, t_read + t_flows + t_save)
    _line("ENCODE total + flow tensor", n, t_read + t_flows + t_enc + t_save)
    print(
        f"  flows {tensor.n_flows:,}, packets kept {tensor.n_packets:,}, "
        f"truncated flows {tensor.truncated:,}, dataset {path.stat().st_size / 1e6:.1f} MB"
    )
    csv = out / f"{name}.csv"
    t_csv, rows = _best(repeat, lambda: write_nprint_csv(traffic, csv))
    _line("nPrint CSV export", rows, t_csv)
    print(f"  CSV {csv.stat().st_size / 1e6:.1f} MB")
    csv.unlink()
    t_dec, decoded = _best(repeat, lambda: decode_flows(tensor))
    _line("decode flow tensor -> headers", decoded.n_packets, t_dec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-packets", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        for name, (sub, patterns) in SETS.items():
            root = DATA / sub
            if not root.is_dir():
                print(f"{name}: not found under {DATA}, skipped")
                continue
            bench_set(name, _files(root, patterns), args.repeat, args.max_packets, Path(tmp))


if __name__ == "__main__":
    main()
