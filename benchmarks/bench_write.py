"""Write ~1M packets of realistic synthetic traffic as pcap and pcapng; print packets/s and MB/s.

Usage: python benchmarks/bench_write.py [--packets N] [--dir DIR]

The traffic is a plausible service mix (TLS, HTTP, DNS, NTP, mDNS, SSDP, QUIC, ICMP; ~330-byte
frames on average) built by ``netdiffusion.emit._synth`` with addresses, payloads and checksums
filled. Timed per stage on one core: fill_payloads, write_pcap (us and ns), write_pcapng, and
the streaming PcapWriter, and the record bytes built in memory (no disk, no fsync).
Target: writing alone well above 2M packets/s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from _timing import best_of  # benchmarks/_timing.py (scripts run from this folder)

from netdiffusion import Traffic
from netdiffusion._traffic import _PACKET_COLUMNS
from netdiffusion.checksum import fill_checksums
from netdiffusion.emit import PcapWriter, assign_addresses, fill_payloads, write_pcap, write_pcapng
from netdiffusion.emit._synth import random_traffic
from netdiffusion.emit.pcap import _Builder


def _rows(t: Traffic, lo: int, hi: int) -> Traffic:
    """Packets ``lo:hi`` as views (no copy of the payload bytes)."""
    cols = {k: getattr(t, k)[lo:hi] for k in _PACKET_COLUMNS}
    off = t.payload_off[lo : hi + 1]
    payload = t.payload[off[0] : off[-1]]
    return replace(t, **cols, payload=payload, payload_off=off - off[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    raw = assign_addresses(random_traffic(args.packets, seed=0), seed=0)
    print(f"built {raw.n_packets} packets in {time.perf_counter() - t0:.1f} s")
    n = raw.n_packets
    secs, filled = best_of(lambda: fill_payloads(raw))
    payload_mb = int(filled.payload_len.sum()) / 1e6
    print(f"fill_payloads      {n / secs:12,.0f} packets/s  {payload_mb / secs:8.1f} MB/s payload")
    traffic = fill_checksums(filled)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        out = Path(tmp)
        for name, fn in (
            ("write_pcap us", lambda: write_pcap(traffic, out / "a.pcap")),
            ("write_pcap ns", lambda: write_pcap(traffic, out / "b.pcap", nanosecond=True)),
            ("write_pcapng", lambda: write_pcapng(traffic, out / "c.pcapng")),
        ):
            secs, report = best_of(fn)
            mb = report.bytes / 1e6
            print(f"{name:18} {n / secs:12,.0f} packets/s  {mb / secs:8.1f} MB/s  ({mb:.0f} MB)")

        chunks = [_rows(traffic, lo, min(n, lo + 262144)) for lo in range(0, n, 262144)]

        def stream() -> object:
            with PcapWriter(out / "d.pcap") as w:
                for chunk in chunks:
                    w.write(chunk)
            return w.report

        secs, report = best_of(stream)
        mb = report.bytes / 1e6
        print(f"{'PcapWriter':18} {n / secs:12,.0f} packets/s  {mb / secs:8.1f} MB/s")
        for fmt in ("pcap", "pcapng"):
            secs, body = best_of(lambda fmt=fmt: _Builder(traffic, fmt, False).records())
            mb = len(body) / 1e6
            print(f"{fmt + ' in memory':18} {n / secs:12,.0f} packets/s  {mb / secs:8.1f} MB/s")
        secs, _ = best_of(lambda: fill_checksums(filled))
        print(f"{'fill_checksums':18} {n / secs:12,.0f} packets/s")
        secs, _ = best_of(lambda: write_pcap(fill_checksums(fill_payloads(raw)), out / "e.pcap"), 1)
        print(f"{'fill+csum+write':18} {n / secs:12,.0f} packets/s")


if __name__ == "__main__":
    main()
