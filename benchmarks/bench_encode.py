"""Encode throughput on one core: capture -> flows -> labels -> dataset file, and nPrint CSV.

For the IoT SENTINEL and nDPI sets (under ../shared/data; a missing set is skipped), prints
packets/s for each stage and for the whole ``netdiffusion encode`` path (read every capture
without payload, assemble flows, label them by folder, write the safetensors dataset), then for
the flow tensor the model sees, the nPrint CSV export (``nprint -4 -t -u -i`` layout) and decoding
the flow tensor back to header bytes. Targets: encode >= 500,000 packets/s; CSV > 200,000
packets/s (nPrint's own tool: ~20,000 packets/s).

The process pins itself to one core; every figure is the best of ``--repeat`` runs (wall clock;
the process CPU time of that run is shown beside it), and the load average is printed with each
set, since other work on the machine slows the figures down. The encode is timed both as the sum
of its stages' best runs and end to end, all stages in one pass per run.

    python benchmarks/bench_encode.py [--repeat 5] [--max-packets 64] [--out DIR]

``--out`` is where the dataset and CSV are written (default: a temporary directory; pass a
directory on the disk you care about, since the CSV is ~3 KB per packet and is fsynced).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from netdiffusion import Traffic
from netdiffusion.dataset import save_dataset, write_nprint_csv
from netdiffusion.encoding import decode_flows, encode_flows
from netdiffusion.flows import assemble_flows
from netdiffusion.inputs import read_captures
from netdiffusion.labels import label_by_folder

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


def _encode(files: list[Path], path: Path) -> None:
    """`netdiffusion encode FILES --labels folder -o PATH`, without the command line."""
    traffic, _ = label_by_folder(assemble_flows(_read(files)))
    save_dataset(traffic, path)


@dataclass
class Timing:
    """Best wall-clock time of a stage, and the process CPU time of that run."""

    wall: float
    cpu: float

    def __add__(self, other: Timing) -> Timing:
        return Timing(self.wall + other.wall, self.cpu + other.cpu)


def _best(repeat: int, fn: Callable[[], T]) -> tuple[Timing, T]:
    """Run ``fn`` ``repeat`` times: the fastest run's timing, and the first run's result."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    best = Timing(time.perf_counter() - w0, time.process_time() - c0)
    for _ in range(repeat - 1):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        t = Timing(time.perf_counter() - w0, time.process_time() - c0)
        if t.wall < best.wall:
            best = t
    return best, out


def _line(label: str, packets: int, t: Timing) -> None:
    rate = packets / t.wall if t.wall > 0 else float("inf")
    print(
        f"  {label:<36} {packets:>9,} packets {t.wall * 1000:>8.1f} ms {rate:>11,.0f} packets/s"
        f"   (cpu {t.cpu * 1000:>7.1f} ms)"
    )


def _load() -> str:
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_set(name: str, files: list[Path], repeat: int, max_packets: int, out: Path) -> None:
    print(f"{name}: {len(files)} files, load average {_load()} (1, 5, 15 min)")
    t_read, traffic = _best(repeat, lambda: _read(files))
    n = traffic.n_packets
    t_flows, flows = _best(repeat, lambda: assemble_flows(traffic))
    t_label, (labelled, _) = _best(repeat, lambda: label_by_folder(flows))
    path = out / f"{name}.safetensors"
    t_save, _ = _best(repeat, lambda: save_dataset(labelled, path))
    _line("read captures (headers only)", n, t_read)
    _line("assemble flows", n, t_flows)
    _line("label flows by folder", n, t_label)
    _line("write dataset", n, t_save)
    _line("ENCODE total (sum of the stage bests)", n, t_read + t_flows + t_label + t_save)
    t_all, _ = _best(repeat, lambda: _encode(files, path))
    _line("ENCODE end to end (one pass)", n, t_all)
    print(f"  flows {labelled.n_flows:,}, dataset {path.stat().st_size / 1e6:.1f} MB")
    t_enc, tensor = _best(repeat, lambda: encode_flows(labelled, max_packets=max_packets))
    _line(f"encode flow tensor (P={max_packets})", n, t_enc)
    print(
        f"  flow tensor: flows {tensor.n_flows:,}, packets kept {tensor.n_packets:,}, "
        f"truncated flows {tensor.truncated:,}"
    )
    csv = out / f"{name}.csv"
    t_csv, rows = _best(repeat, lambda: write_nprint_csv(traffic, csv))
    _line("nPrint CSV export", rows, t_csv)
    print(f"  CSV {csv.stat().st_size / 1e6:.1f} MB")
    csv.unlink()
    t_dec, decoded = _best(repeat, lambda: decode_flows(tensor))
    _line("decode flow tensor -> headers", decoded.n_packets, t_dec)
    print(f"  load average after {name}: {_load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per stage (best is shown)")
    parser.add_argument("--max-packets", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        core = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})  # one core
        print(f"pinned to core {core} of {os.cpu_count()}")
    else:
        print("cannot pin to one core on this platform")
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        for name, (sub, patterns) in SETS.items():
            root = DATA / sub
            if not root.is_dir():
                print(f"{name}: not found under {DATA}, skipped")
                continue
            bench_set(name, _files(root, patterns), args.repeat, args.max_packets, Path(tmp))


if __name__ == "__main__":
    main()
