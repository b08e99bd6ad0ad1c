"""Repair + write pcap on one core: real captures (what ``netdiffusion repair`` does) and synthetic.

For each real set (the IoT Sentinel captures and the nDPI sample captures under the shared data
folder), the captures are read with ``read_captures`` and flows assembled (neither is timed);
then ``repair(traffic, synthetic=False)`` + ``write_pcap(..., mtu=None)`` is timed, best of
``--repeat``, pinned to one CPU. Synthetic traffic (random header bits shaped like model output,
and decoded pure-noise nPrint tensors with assigned addresses) goes through
``repair(synthetic=True)`` + ``write_pcap``. Each stage is also timed alone. Prints packets/s and
MB/s (bytes of pcap written per second); "records in memory" is the writer without the file
(no write, fsync or rename).

Target: repair + write >= 500,000 packets/s on the real sets.
Run: ``python benchmarks/bench_repair_write.py [--data DIR] [--packets N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from netdiffusion import Traffic
from netdiffusion.checksum import fill_checksums
from netdiffusion.emit import assign_addresses, write_pcap
from netdiffusion.emit.payload import fill_payloads
from netdiffusion.emit.pcap import _Builder
from netdiffusion.flows import assemble_flows
from netdiffusion.inputs import expand_captures, read_captures
from netdiffusion.repair import repair

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_of  # benchmarks/_timing.py (scripts run from this folder)
from bench_repair import synthetic

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_SETS = (("iot-sentinel", "iot-sentinel/captures"), ("ndpi", "ndpi/pcap"))


def _line(name: str, n: int, secs: float, nbytes: int | None = None) -> None:
    mb = f"  {nbytes / 1e6 / secs:8.1f} MB/s" if nbytes else ""
    print(f"  {name:24} {n / secs:12,.0f} packets/s{mb}  ({secs * 1e3:7.1f} ms)")


def _stages(traffic: Traffic, synth: bool, out: Path, repeat: int, mtu: int | None) -> None:
    n = traffic.n_packets

    def rw() -> int:
        repaired, _ = repair(traffic, synthetic=synth)
        return write_pcap(repaired, out, mtu=mtu).bytes

    secs, nbytes = best_of(rw, repeat)
    _line("repair + write_pcap", n, secs, nbytes)
    secs, (repaired, _) = best_of(lambda: repair(traffic, synthetic=synth), repeat)
    _line(f"repair(synthetic={synth})", n, secs)
    secs, rep = best_of(lambda: write_pcap(repaired, out, mtu=mtu), repeat)
    _line("write_pcap", repaired.n_packets, secs, rep.bytes)
    secs, body = best_of(lambda: _Builder(repaired, "pcap", False).records(), repeat)
    _line("  records in memory", repaired.n_packets, secs, len(body))
    secs, _ = best_of(lambda: fill_checksums(repaired), repeat)
    _line("fill_checksums", repaired.n_packets, secs)
    if synth:
        m = repaired.n_packets
        short = repaired.with_payload(np.zeros(0, np.uint8), np.zeros(m + 1, np.int64))
        secs, _ = best_of(lambda: fill_payloads(short), repeat)
        _line("fill_payloads", repaired.n_packets, secs)


def _noise(n_flows: int, packets: int, seed: int = 7) -> Traffic:
    """Decoded pure-noise nPrint tensors with addresses assigned (the noise test's input)."""
    from netdiffusion.encoding import N_FEATURES, decode_flows

    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, size=(n_flows, packets, N_FEATURES), dtype=np.int8)
    return assign_addresses(decode_flows(bits), seed=seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--packets", type=int, default=1_000_000, help="synthetic packets")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last)")
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    cpu = cpus[-1] if args.cpu is None else args.cpu
    os.sched_setaffinity(0, {cpu})
    print(f"pinned to CPU {cpu} of {os.cpu_count()}; best of {args.repeat}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.pcap"
        for name, rel in REAL_SETS:
            folder = args.data / rel
            if not folder.is_dir():
                print(f"{name}: {folder} not found, skipped")
                continue
            traffic, summary = read_captures(expand_captures([folder]), progress=False)
            traffic = assemble_flows(traffic)
            mb = traffic.payload.nbytes / 1e6
            print(
                f"{name}: {summary.files_read} files, {traffic.n_packets} packets, "
                f"{traffic.n_flows} flows, {mb:.0f} MB payload"
            )
            _stages(traffic, False, out, args.repeat, None)
        traffic = synthetic(args.packets)
        print(
            f"synthetic (random header bits): {traffic.n_packets} packets, {traffic.n_flows} flows"
        )
        _stages(traffic, True, out, args.repeat, 1500)
        traffic = _noise(max(1, args.packets // 40), 8)
        print(f"decoded noise + addresses: {traffic.n_packets} packets, {traffic.n_flows} flows")
        _stages(traffic, True, out, args.repeat, 1500)


if __name__ == "__main__":
    main()
