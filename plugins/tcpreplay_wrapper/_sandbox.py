"""Inside a private network namespace: replay onto one end of a veth pair, capture the other.

This is the file output of :func:`netdiffusion_tcpreplay.replay_to_file` where tcpreplay has
no ``-w`` (before 4.5): run as ``unshare [--user --map-root-user] --net python -m
netdiffusion_tcpreplay._sandbox REQUEST_JSON``, which needs no root where unprivileged user
namespaces are allowed. It prints one JSON object: tcpreplay's status and output, and the
capture tool's messages. Nothing leaves the namespace but the capture file.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

from ._capture import Capture

__all__ = ["main"]

_SEND, _RECV = "nd-send0", "nd-recv0"


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {(proc.stderr or proc.stdout).strip()}")


def _setup(mtu: int) -> None:
    for conf in ("all", "default"):  # no IPv6 router solicitations or DAD on the pair
        p = Path(f"/proc/sys/net/ipv6/conf/{conf}/disable_ipv6")
        if p.exists():
            with contextlib.suppress(OSError):
                p.write_text("1")
    _run(["ip", "link", "add", _SEND, "type", "veth", "peer", "name", _RECV])
    for dev in (_SEND, _RECV):
        _run(["ip", "link", "set", dev, "mtu", str(mtu), "up"])


def main(argv: list[str]) -> int:
    """Run one request (a JSON object: pcap, out, args, mtu); print the outcome as JSON."""
    req = json.loads(argv[0])
    out: dict[str, object] = {}
    try:
        _setup(int(req["mtu"]))
        cmd = [req["tcpreplay"], "-i", _SEND, *req["args"], req["pcap"]]
        with Capture(_RECV, req["out"], snaplen=int(req["mtu"]) + 64) as cap:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        out.update(
            returncode=proc.returncode,
            stdout=proc.stdout,
            stderr=proc.stderr,
            capture=cap.stderr.decode(errors="replace"),
            tool=cap.tool,
        )
    except Exception as exc:  # reported to the parent as one line
        out.update(returncode=-1, error=str(exc).strip().splitlines()[-1] if str(exc) else "")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
