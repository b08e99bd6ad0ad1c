"""Protocol validity of generated traffic as tshark sees it, next to real traffic's own rates.

Generates ``--flows`` flows with a model (default: the bundled one) into a pcap, then asks
tshark, per packet: malformed, expert error, expert warning, any TCP-analysis flag, and any bad
IP/TCP/UDP/ICMP checksum. The same figures for real captures (``--real``, default: the model's
held-out IoT SENTINEL files) are printed beside them: the target is rates no higher than the
real traffic's own. Also prints the TCP-analysis flags by kind.

    python benchmarks/validity_report.py [--model DIR] [--flows 2000] [--real FILE ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_SEV_ERROR, _SEV_WARN = 8388608, 6291456  # Wireshark's PI_ERROR / PI_WARN
_PREFS = ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
          "-o", "udp.check_checksum:TRUE"]  # fmt: skip


def _rates(tshark: str, pcaps: list[Path]) -> tuple[dict[str, float], Counter[str], int]:
    """Per-packet rates of each verdict over ``pcaps``, TCP-analysis flags by kind, packets."""
    counts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    total = 0
    cols = ["_ws.malformed", "_ws.expert.severity", "tcp.analysis.flags", "ip.checksum.status",
            "tcp.checksum.status", "udp.checksum.status", "icmp.checksum.status"]  # fmt: skip
    for pcap in pcaps:
        cmd = [tshark, "-n", "-r", str(pcap), *_PREFS, "-T", "fields", "-E", "occurrence=a",
               "-E", "aggregator=,", *(x for c in cols for x in ("-e", c))]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            f = (line.split("\t") + [""] * len(cols))[: len(cols)]
            sev = {int(s) for s in f[1].split(",") if s}
            total += 1
            counts["malformed"] += bool(f[0])
            counts["error"] += any(s >= _SEV_ERROR for s in sev)
            counts["warning"] += any(_SEV_WARN <= s < _SEV_ERROR for s in sev)
            counts["tcp_analysis"] += bool(f[2])
            counts["bad_checksum"] += any(v == "0" for c in f[3:] for v in c.split(","))
        flt = [tshark, "-n", "-r", str(pcap), "-Y", "tcp.analysis.flags", "-T", "fields",
               "-e", "_ws.expert.message", "-E", "occurrence=a", "-E", "aggregator=|"]  # fmt: skip
        for line in subprocess.run(flt, capture_output=True, text=True).stdout.splitlines():
            for msg in line.split("|"):
                if msg and not msg.startswith("Connection "):
                    kinds[msg] += 1
    names = ("malformed", "error", "warning", "tcp_analysis", "bad_checksum")
    return {k: counts[k] / max(total, 1) for k in names}, kinds, total


def main(argv: list[str] | None = None) -> int:
    """Print the report; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="model dir (default: bundled)")
    ap.add_argument("--flows", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--real", type=Path, nargs="*", default=None, help="real captures to compare")
    args = ap.parse_args(argv)
    tshark = shutil.which("tshark")
    if tshark is None:
        sys.exit("error: tshark is not installed")

    from netdiffusion.emit import write_pcap
    from netdiffusion.model import DEFAULT_MODEL_DIR, load_model

    model_dir = args.model or Path(DEFAULT_MODEL_DIR)
    real = args.real
    if real is None:
        held = json.loads((model_dir / "heldout.json").read_text())
        base = args.data / held.get("source", "iot-sentinel/captures")
        real = [base / f for f in held["held_out_files"]]
    model = load_model(model_dir, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "generated.pcap"
        write_pcap(model.generate(args.flows, seed=args.seed), pcap)
        gen, gen_kinds, n_gen = _rates(tshark, [pcap])
    ref, ref_kinds, n_ref = _rates(tshark, real)
    print(f"model {model_dir}: {args.flows} flows, {n_gen} packets; real: {len(real)} files, "
          f"{n_ref} packets; tshark per packet:")  # fmt: skip
    print(f"  {'':14s} {'generated':>10s} {'real':>10s}")
    for k in gen:
        print(f"  {k:14s} {100 * gen[k]:9.3f}% {100 * ref[k]:9.3f}%")
    print("TCP-analysis flags by kind (generated | real):")
    for msg in sorted(set(gen_kinds) | set(ref_kinds)):
        print(f"  {gen_kinds[msg]:6d} | {ref_kinds[msg]:6d}  {msg}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
