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
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rates(tshark: str, pcaps: list[Path]) -> tuple[dict[str, float], Counter[str], int]:
    """Per-packet rates of each verdict over ``pcaps``, TCP-analysis flags by kind, packets
    (:func:`netdiffusion.evaluation.validity.tshark_rates`, every packet counted)."""
    from netdiffusion.evaluation.validity import tshark_rates

    return tshark_rates(pcaps, tshark=tshark)


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
