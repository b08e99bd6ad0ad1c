"""Capture reader throughput on one core: the IoT SENTINEL and nDPI sets, read whole.

For each set, three ways: every file through :func:`iter_capture` one at a time, all files
through :func:`iter_captures` (small files decoded together), and the same keeping no payload
bytes (``payload_bytes=0``: headers only). Prints records/s (every record
the files hold), kept packets/s and MB/s of capture bytes, best of ``--repeat`` runs, wall time.
A set that is not under ../shared/data is skipped with a message.

    python benchmarks/bench_read.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

from netdiffusion.capture import CaptureError, ReadReport, iter_capture, iter_captures

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {
    "iot-sentinel": ("iot-sentinel/captures", ("*.pcap",)),
    "ndpi": ("ndpi/pcap", ("*.pcap", "*.pcapng", "*.cap")),
}
Result = tuple[int, int, int, int]  # records, kept, bytes, refused


def _files(root: Path, patterns: tuple[str, ...]) -> list[Path]:
    return sorted({p for pat in patterns for p in root.rglob(pat) if p.is_file()})


def one_by_one(files: list[Path]) -> Result:
    """Each file through iter_capture."""
    seen = kept = nbytes = refused = 0
    for path in files:
        rep = ReadReport()
        try:
            for chunk in iter_capture(path, report=rep):
                kept += chunk.n_packets
        except CaptureError:
            refused += 1
        seen += rep.packets_seen
        nbytes += rep.bytes_read
    return seen, kept, nbytes, refused


def together(files: list[Path], payload_bytes: int | None = None) -> Result:
    """All files through iter_captures."""
    reports: list[ReadReport] = []
    chunks = iter_captures(files, reports=reports, skip_errors=True, payload_bytes=payload_bytes)
    kept = sum(c.n_packets for c in chunks)
    seen = sum(r.packets_seen for r in reports)
    nbytes = sum(r.bytes_read for r in reports)
    return seen, kept, nbytes, sum(r.error is not None for r in reports)


def headers_only(files: list[Path]) -> Result:
    """All files through iter_captures, keeping no payload bytes."""
    return together(files, payload_bytes=0)


def _best(
    fns: list[Callable[[list[Path]], Result]], files: list[Path], repeat: int
) -> list[tuple[float, Result]]:
    """Best time of each function; runs alternate so that all see the same machine load."""
    best: list[tuple[float, Result]] = [(float("inf"), (0, 0, 0, 0))] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            result = fn(files)
            secs = time.perf_counter() - t0
            if secs < best[i][0]:
                best[i] = (secs, result)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per measure; the best is shown")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    for name, (sub, patterns) in SETS.items():
        root = args.data / sub
        if not root.is_dir():
            print(f"{name}: skipped ({root} not found)")
            continue
        files = _files(root, patterns)
        together(files)  # warm the page cache
        labels = ("iter_capture per file", "iter_captures", "iter_captures payload_bytes=0")
        results = _best([one_by_one, together, headers_only], files, args.repeat)
        for label, (secs, (seen, kept, nbytes, refused)) in zip(labels, results, strict=True):
            print(
                f"{name} [{label}]: {len(files)} files ({refused} refused), {seen} records, "
                f"{kept} kept, {nbytes / 1e6:.1f} MB in {secs:.3f} s: "
                f"{seen / secs:,.0f} packets/s ({kept / secs:,.0f} kept/s), "
                f"{nbytes / 1e6 / secs:.1f} MB/s"
            )


if __name__ == "__main__":
    main()
