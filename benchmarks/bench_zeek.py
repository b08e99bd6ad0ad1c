"""conn.log production throughput on one core: the IoT SENTINEL captures (target 500k packets/s).

The captures are read once (not timed); then, best of ``--repeat`` runs, three stages are timed
over all their packets: the engine's packet columns and payload signatures
(:func:`packet_table`), connection tracking and Zeek's semantics (:func:`connections`), and the
whole path to a written TSV conn.log (:class:`ConnLogWriter` add + close, uids and formatting
included). Prints packets/s and connections/s. Pin it to one core for the one-core figure:

    taskset -c 1 python benchmarks/bench_zeek.py [--repeat 3] [--copies 4]

``--copies`` repeats the traffic with shifted times (more packets, same mix). With
``--generated N``, N flows are also generated with the bundled model (CPU is fine for a few
hundred) and their conn_state distribution is printed next to the real captures' of the model's
classes (logs straight from generated traffic, no pcap round trip).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from _timing import best_of  # benchmarks/_timing.py (scripts run from this folder)

from netdiffusion._traffic import Traffic
from netdiffusion.capture import read_captures
from netdiffusion_zeek import ConnLogWriter, ConnOptions
from netdiffusion_zeek._conn import connections
from netdiffusion_zeek._packets import packet_table

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "iot-sentinel" / "captures"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--generated", type=int, default=0, metavar="N")
    args = parser.parse_args()
    files = sorted(DATA.rglob("*.pcap")) if DATA.is_dir() else []
    if not files:
        print(f"skipped: no IoT SENTINEL captures under {DATA}")
        return
    traffic, _ = read_captures(files, skip_errors=True)
    traffic = traffic.sorted_by_time()
    if args.copies > 1:
        span = int(traffic.ts_ns.max() - traffic.ts_ns.min()) + 10**12
        parts = []
        for i in range(args.copies):
            part = traffic.copy()
            part.ts_ns += i * span
            parts.append(part)
        traffic = Traffic.concat(parts)
    n = traffic.n_packets
    print(
        f"{len(files)} files, {n} IPv4 TCP/UDP/ICMP packets, CPU affinity "
        f"{len(os.sched_getaffinity(0))} core(s)"
    )
    opts = ConnOptions()
    t_pk, pk = best_of(lambda: packet_table(traffic), args.repeat)
    t_conn, conns = best_of(lambda: connections(pk, opts), args.repeat)
    k = len(conns["ts"])

    def whole() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            writer = ConnLogWriter(tmp)
            writer.add(traffic)
            writer.close()

    t_all, _ = best_of(whole, args.repeat)
    states = dict(zip(*np.unique(conns["conn_state"].astype(str), return_counts=True), strict=True))
    print(f"connections {k}: " + ", ".join(f"{s} {c}" for s, c in sorted(states.items())))
    for name, sec in (
        ("packet columns + signatures", t_pk),
        ("connection semantics", t_conn),
        ("whole: Traffic -> conn.log TSV", t_all),
    ):
        print(f"{name:34s} {sec:8.3f} s  {n / sec:12,.0f} packets/s  {k / sec:10,.0f} conns/s")

    if args.generated:
        compare_generated(args.generated)


def _states(writer: ConnLogWriter) -> dict[str, float]:
    states = [str(s) for s in writer.columns()["conn_state"]]
    return {s: states.count(s) / max(len(states), 1) for s in sorted(set(states))}


def compare_generated(n_flows: int) -> None:
    """conn_state shares of generated flows next to those of the real captures of its classes."""
    from netdiffusion.model.sampling import load_model

    model = load_model(device=None)
    real = ConnLogWriter("unused")
    for cls in model.classes:
        files = sorted((DATA / cls).glob("*.pcap"))
        if files:
            traffic, _ = read_captures(files, skip_errors=True)
            real.add(traffic.sorted_by_time())
    gen = ConnLogWriter("unused")
    for chunk in model.generate_batches(n_flows, seed=0):
        gen.add(chunk)
    a, b = _states(real), _states(gen)
    print(
        f"conn_state shares, real captures of {len(model.classes)} classes vs {n_flows} "
        "generated flows (bundled model):"
    )
    for state in sorted(set(a) | set(b)):
        print(f"  {state:7s} real {a.get(state, 0):6.1%}   generated {b.get(state, 0):6.1%}")


if __name__ == "__main__":
    main()
