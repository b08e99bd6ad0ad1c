"""Rate accuracy of ``netdiffusion replay --pps``: what the receiving side measures.

Generates traffic with the bundled model (CPU), keeps its first ``--packets`` packets (3,000),
and replays them with ``netdiffusion replay --pps N`` (1,000) onto one end of a veth pair in a
fresh network namespace, capturing the other end with tcpdump. The receiver's rate is
``(packets - 1) / (last arrival - first arrival)``; the target is within 10% of N, and every
packet must arrive. Needs root and network namespaces (``ip netns add``); without them it says
why and exits 0.

    python benchmarks/bench_replay_rate.py [--pps 1000] [--packets 3000] [--seed 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces and a veth pair)"
    for tool in ("ip", "tcpreplay", "tcpdump"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    name = f"ndbench-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add does not work here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def _arrivals(path: Path) -> np.ndarray:
    """Arrival times (s) of the IPv4 frames (ours) in a capture, via the reader."""
    from netdiffusion.capture import read_capture

    return read_capture(path, payload_bytes=0)[0].ts_ns.astype(np.float64) / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pps", type=float, default=1000.0)
    ap.add_argument("--packets", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    why = _why_not()
    if why:
        print(f"bench_replay_rate: cannot run here: {why}")
        return 0

    from netdiffusion.emit import write_pcap
    from netdiffusion.model import load_model
    from netdiffusion_tcpreplay import Capture

    model = load_model(device="cpu")
    flows = max(100, args.packets // 4)
    traffic = model.generate(flows, seed=args.seed)
    while traffic.n_packets < args.packets:
        flows *= 2
        traffic = model.generate(flows, seed=args.seed)
    traffic = traffic.take(np.arange(args.packets))
    ns = f"ndbench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        src, got = Path(tmp) / "in.pcap", Path(tmp) / "rx.pcap"
        write_pcap(traffic, src)

        def ip(*a: str) -> None:
            subprocess.run(["ip", *a], check=True, capture_output=True)

        ip("netns", "add", ns)
        try:
            for conf in ("all", "default"):  # no IPv6 chatter on the pair
                subprocess.run(
                    [
                        "ip",
                        "netns",
                        "exec",
                        ns,
                        "sysctl",
                        "-qw",
                        f"net.ipv6.conf.{conf}.disable_ipv6=1",
                    ],
                    capture_output=True,
                )
            ip("-n", ns, "link", "add", "tx0", "type", "veth", "peer", "name", "rx0")
            ip("-n", ns, "link", "set", "tx0", "up")
            ip("-n", ns, "link", "set", "rx0", "up")
            with Capture("rx0", got, netns=ns, tool="tcpdump", snaplen=2048):
                cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "netdiffusion"]
                cmd += ["replay", str(src), "-i", "tx0", f"--pps={args.pps:g}", "--json"]
                proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"bench_replay_rate: replay failed: {proc.stderr.strip()}")
                return 1
            sent = json.loads(proc.stdout)
            t = _arrivals(got)
        finally:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    n = len(t)
    rate = (n - 1) / (t[-1] - t[0]) if n > 1 else 0.0
    err = rate / args.pps - 1
    gaps = np.diff(t)
    print(
        f"replay --pps {args.pps:g}: {args.packets} packets sent (tcpreplay says {sent['pps']:.2f}"
        f" pps), {n} received; receiver rate {rate:.2f} packets/s ({err:+.2%} vs target; "
        f"inter-arrival median {np.median(gaps) * 1e3:.3f} ms, p99 "
        f"{np.percentile(gaps, 99) * 1e3:.3f} ms)"
    )
    ok = n == args.packets and abs(err) <= 0.10
    print("PASS: within 10%, none lost" if ok else "FAIL: outside 10% or packets lost")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
