"""Scapy adapter throughput: packets/s through SynthSocket and synth() for 10,000 packets,
next to rdpcap() on a pcap file of the same packets.

Timed, best of ``--repeat`` runs, with the bundled model (or ``--model``) on ``--device``:

- ``generate_records``: the model alone, pcap records in memory (no Scapy), for reference;
- ``SynthSocket + sniff``: ``sniff(opened_socket=SynthSocket(count=N), count=N)``, generation
  included: what a Scapy user sees;
- ``synth``: ``synth(N)``, a PacketList;
- ``rdpcap``: Scapy reading the same N packets from a pcap file (written once, not timed);
- ``packets_to_traffic``: that PacketList back to netdiffusion's Traffic (the reverse way).

    python benchmarks/bench_scapy.py [--packets 10000] [--repeat 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _timing import best_of  # benchmarks/_timing.py (scripts run from this folder)
from scapy.plist import PacketList
from scapy.sendrecv import sniff
from scapy.utils import rdpcap, wrpcap

from netdiffusion_scapy import SynthSocket, packets_to_traffic, synth
from netdiffusion_scapy._socket import get_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", default=None, help="model directory (default: bundled)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--flows",
        type=int,
        default=None,
        help="flows to plan (default: as generate --packets plans)",
    )
    args = parser.parse_args()
    n, seed, dev = args.packets, args.seed, args.device
    model = get_model(args.model, dev)
    flows = args.flows or model.flows_for_packets(n)  # generate --packets's rule

    def records() -> int:
        got = 0
        for recs in model.generate_records(flows, seed=seed, device=dev):
            got += recs.n_packets
            if got >= n:
                break
        return min(got, n)

    def socket() -> PacketList:
        sock = SynthSocket(model=model, count=n, flows=flows, seed=seed, device=dev)
        return sniff(opened_socket=sock)

    def packets() -> PacketList:
        return synth(n, model=model, flows=flows, seed=seed, device=dev)

    records()  # warm-up: first sampling pass, allocator, caches
    rows = []
    t, got = best_of(records, args.repeat)
    rows.append(("generate_records (no Scapy)", got, t))
    t, pl = best_of(socket, args.repeat)
    rows.append(("SynthSocket + sniff", len(pl), t))
    t, pl = best_of(packets, args.repeat)
    rows.append(("synth", len(pl), t))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "same.pcap"
        wrpcap(str(path), pl)
        t, back = best_of(lambda: rdpcap(str(path)), args.repeat)
        rows.append(("rdpcap (same packets)", len(back), t))
    t, (traffic, _) = best_of(lambda: packets_to_traffic(back), args.repeat)
    rows.append(("packets_to_traffic (reverse)", traffic.n_packets, t))

    print(f"model {model.path}, device {dev}, {flows} flows, seed {seed}, best of {args.repeat}")
    print(f"{'path':32} {'packets':>8} {'seconds':>8} {'packets/s':>11}")
    for name, count, secs in rows:
        print(f"{name:32} {count:8d} {secs:8.3f} {count / secs:11,.0f}")


if __name__ == "__main__":
    main()
