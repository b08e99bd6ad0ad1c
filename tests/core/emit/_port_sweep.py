"""Sweep service ports through tshark: which ports does a payload filler leave flagged?

Not a test (too slow for the suite: minutes). It measured the port tables in
``netdiffusion.emit.payload`` (``UNFILLABLE_TCP`` / ``UNFILLABLE_UDP`` and the per-port filler
bytes) and the clean ephemeral client ports. Run it as::

    python -m tests.core.emit._port_sweep tcp 1-65535 --fill 0 --fill 255
    python -m tests.core.emit._port_sweep udp 1-65535 --filler    # the real fill_payloads

Each port gets one flow (TCP: handshake, data segments in alternating directions, teardown;
UDP: datagrams in alternating directions) with the payload lengths ``LENGTHS``, from client
port ``--client`` (default 50000, a port nothing in tshark 4.0 claims). A port counts as flagged
when any of its packets is malformed or carries an expert error or warning other than TCP's own
connection notes. The output is one line per filler: the flagged ports as ranges.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from netdiffusion.checksum import fill_checksums
from netdiffusion.emit import assign_addresses, fill_payloads, write_pcap
from netdiffusion.emit._synth import synthetic_traffic

LENGTHS = [1, 2, 4, 8, 16, 40, 100, 300, 1000, 1460]
# TCP notes that are about the connection, not the payload (a FIN/RST teardown is not flagged
# here: synthetic_traffic ends with FINs, which tshark only "chats" about).
_IGNORED = ("Connection reset",)


def parse_ports(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def as_ranges(ports: list[int]) -> str:
    ports = sorted(ports)
    out: list[str] = []
    i = 0
    while i < len(ports):
        j = i
        while j + 1 < len(ports) and ports[j + 1] == ports[j] + 1:
            j += 1
        out.append(str(ports[i]) if i == j else f"{ports[i]}-{ports[j]}")
        i = j + 1
    return ",".join(out)


def _build(proto: int, ports: list[int], lengths: list[int], client: int, seed: int):
    t = synthetic_traffic([proto] * len(ports), ports, [lengths] * len(ports), seed=seed)
    t = assign_addresses(t, seed=seed, clients_per_class=4096)
    l4 = t.l4.copy()
    orig = t.direction == 0
    c = np.array([client >> 8, client & 0xFF], np.uint8)
    l4[orig, 0:2] = c
    l4[~orig, 2:4] = c
    t.l4 = l4
    return t


def _constant(t, byte: int):
    n = t.payload_len.astype(np.int64)
    off = np.zeros(len(n) + 1, np.int64)
    np.cumsum(n, out=off[1:])
    return t.with_payload(np.full(int(off[-1]), byte, np.uint8), off)


def flagged_ports(path: Path, proto: int, client: int) -> set[int]:
    """Service ports of the packets tshark flags in ``path``."""
    name = "tcp" if proto == 6 else "udp"
    cmd = ["tshark", "-n", "-r", str(path), "-Y", "_ws.malformed || _ws.expert.severity >= 6291456",
           "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=;", "-e", f"{name}.srcport",
           "-e", f"{name}.dstport", "-e", "_ws.malformed", "-e", "_ws.expert.severity",
           "-e", "_ws.expert.message"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    out: set[int] = set()
    for line in res.stdout.splitlines():
        sp, dp, mal, sev, msg = (line.split("\t") + [""] * 5)[:5]
        sevs = [int(s) for s in sev.split(";") if s]
        msgs = msg.split(";")
        real = bool(mal) or any(
            s >= 6291456 and not any(m.startswith(x) for x in _IGNORED)
            for s, m in zip(sevs, msgs + [""] * len(sevs), strict=False)
        )
        if not real:
            continue
        a, b = int(sp.split(";")[0]), int(dp.split(";")[0])
        out.add(b if a == client else a)
    return out


def sweep(
    proto: int, ports: list[int], fill: int | None, lengths: list[int], client: int, jobs: int = 2
) -> set[int]:
    """Ports flagged with the constant byte ``fill`` (``None``: ``fill_payloads``)."""
    chunks = [ports[i::jobs] for i in range(jobs)]
    with tempfile.TemporaryDirectory() as tmp:

        def one(k: int) -> set[int]:
            if not chunks[k]:
                return set()
            t = _build(proto, chunks[k], lengths, client, seed=k)
            t = fill_payloads(t) if fill is None else _constant(t, fill)
            path = Path(tmp) / f"sweep{k}.pcap"
            write_pcap(fill_checksums(t), path)
            return flagged_ports(path, proto, client)

        with ThreadPoolExecutor(jobs) as ex:
            return set().union(*ex.map(one, range(jobs)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("proto", choices=["tcp", "udp"])
    ap.add_argument("ports")
    ap.add_argument("--fill", type=int, action="append", default=[])
    ap.add_argument("--filler", action="store_true", help="use fill_payloads")
    ap.add_argument("--client", type=int, default=50000)
    ap.add_argument("--lengths", default=",".join(map(str, LENGTHS)))
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args(argv)
    proto = 6 if a.proto == "tcp" else 17
    ports = parse_ports(a.ports)
    lengths = [int(x) for x in a.lengths.split(",")]
    fills: list[int | None] = [*a.fill] + ([None] if a.filler or not a.fill else [])
    for fill in fills:
        bad = sweep(proto, ports, fill, lengths, a.client, a.jobs)
        label = "filler" if fill is None else f"0x{fill:02x}"
        print(f"{a.proto} {label} {len(bad)}: {as_ranges(sorted(bad))}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
