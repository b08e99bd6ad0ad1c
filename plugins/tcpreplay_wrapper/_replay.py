"""Run tcpreplay (argument lists, never a shell) after a preflight check, and parse its statistics.

:func:`replay` sends a capture out of one interface, or two with a tcpprep cache (client to
server out of the first, server to client out of the second). :func:`replay_to_file` is the
path without root: it writes what tcpreplay sends to a pcap, with ``tcpreplay -w`` where the
installed tcpreplay has it (4.5 and later), else by replaying inside a private network
namespace (an unprivileged user namespace when not root) onto a veth pair and capturing the
other end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ._cache import DEFAULT_CLIENT_NET, CacheReport, build_cache
from ._check import CheckReport, check_capture
from ._iface import Interface, ReplayError, interface_info

__all__ = ["ReplayResult", "parse_stats", "replay", "replay_to_file", "tcpreplay_has_write"]

INSTALL_HINT = "apt-get install tcpreplay"
_VETH_MAX_MTU = 65535

_STATS = {
    "packets": (r"Actual:\s+(\d+) packets", int),
    "bytes": (r"Actual:\s+\d+ packets \((\d+) bytes\)", int),
    "seconds": (r"sent in ([\d.]+) seconds", float),
    "bytes_per_s": (r"Rated:\s+([\d.]+) Bps", float),
    "mbps": (r"Rated:.*?([\d.]+) Mbps", float),
    "pps": (r"Rated:.*?([\d.]+) pps", float),
    "flows": (r"Flows:\s+(\d+) flows", int),
}
_COUNTERS = {
    "successful": r"Successful packets:\s+(\d+)",
    "failed": r"Failed packets:\s+(\d+)",
    "truncated": r"Truncated packets:\s+(\d+)",
    "retried_enobufs": r"Retried packets \(ENOBUFS\):\s+(\d+)",
    "retried_eagain": r"Retried packets \(EAGAIN\):\s+(\d+)",
}


@dataclass
class ReplayResult:
    """What a replay did: tcpreplay's statistics, the command, and the preflight's warnings."""

    pcap: str
    interfaces: list[str]
    command: list[str]
    dry_run: bool = False
    packets: int = 0
    bytes: int = 0
    seconds: float = 0.0
    bytes_per_s: float = 0.0
    mbps: float = 0.0
    pps: float = 0.0
    flows: int = 0
    successful: int = 0
    failed: int = 0
    truncated: int = 0
    retried_enobufs: int = 0
    retried_eagain: int = 0
    warnings: list[str] = field(default_factory=list)
    cache: dict[str, Any] | None = None
    output: str | None = None  # the pcap written by replay_to_file
    method: str = "interface"  # "interface", "tcpreplay -w" or "sandbox"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        cmd = " ".join(self.command)
        if self.dry_run:
            out = [f"dry run: would run {cmd}"]
        else:
            out = [
                f"sent {self.packets} packets ({self.bytes} bytes) in {self.seconds:.6f} s: "
                f"{self.pps:.2f} pps, {self.mbps:.2f} Mbps, {self.flows} flows",
                f"  successful {self.successful}, failed {self.failed}, truncated "
                f"{self.truncated}, retried {self.retried_enobufs + self.retried_eagain}",
            ]
            if self.output:
                out.append(f"  written to {self.output} ({self.method})")
        if self.cache:
            out.append(
                f"  cache {self.cache['path']} (roles {self.cache['roles']}): "
                f"{self.cache['client_to_server']} client->server on {self.interfaces[0]}, "
                f"{self.cache['server_to_client']} server->client on {self.interfaces[-1]}"
            )
        out += [f"  warning: {w}" for w in self.warnings]
        return out


def parse_stats(text: str) -> dict[str, float | int]:
    """tcpreplay's summary (``Actual:``, ``Rated:``, ``Flows:`` and per-device counters).

    Counters of several devices (dual-interface replay) are summed.
    """
    out: dict[str, float | int] = {}
    for key, (pattern, kind) in _STATS.items():
        m = re.search(pattern, text)
        if m:
            out[key] = kind(m.group(1))
    for key, pattern in _COUNTERS.items():
        values = [int(v) for v in re.findall(pattern, text)]
        if values:
            out[key] = sum(values)
    return out


def _tcpreplay() -> str:
    exe = shutil.which("tcpreplay")
    if exe is None:
        raise ReplayError(f"tcpreplay is not installed: {INSTALL_HINT}")
    return exe


@lru_cache(maxsize=4)
def _help_text(exe: str) -> str:
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    return proc.stdout + proc.stderr


def tcpreplay_has_write() -> bool:
    """True when the installed tcpreplay can write to a file (``-w``, tcpreplay 4.5 on)."""
    return "--write" in _help_text(_tcpreplay())


def _rate_args(
    pps: float | None,
    mbps: float | None,
    topspeed: bool,
    multiplier: float | None,
    loop: int,
) -> list[str]:
    chosen = [
        name
        for name, on in (
            ("--pps", pps is not None),
            ("--mbps", mbps is not None),
            ("--topspeed", topspeed),
            ("--multiplier", multiplier is not None),
        )
        if on
    ]
    if len(chosen) > 1:
        raise ValueError(f"choose one rate option, not {' and '.join(chosen)}")
    for name, value in (("pps", pps), ("mbps", mbps), ("multiplier", multiplier)):
        if value is not None and not value > 0:
            raise ValueError(f"--{name} must be positive, not {value}")
    if loop < 1:
        raise ValueError(f"--loop must be at least 1, not {loop}")
    args: list[str] = []
    if pps is not None:
        args.append(f"--pps={pps:g}")
    elif mbps is not None:
        args.append(f"--mbps={mbps:g}")
    elif topspeed:
        args.append("--topspeed")
    elif multiplier is not None:
        args.append(f"--multiplier={multiplier:g}")
    if loop != 1:
        args.append(f"--loop={loop}")
    return args


def _preflight(report: CheckReport, where: str) -> list[str]:
    """Raise on blocking problems; return the others as warning lines."""
    blocking = report.blocking
    if blocking:
        first = blocking[0]
        more = f" (and {len(blocking) - 1} more problem kinds)" if len(blocking) > 1 else ""
        what = "MTU too small" if first.kind == "mtu" else first.kind
        raise ReplayError(
            f"{report.path}: cannot replay on {where}: {what}: {first.count} "
            f"packets, {first.message}{more}"
        )
    return [f"{p.kind}: {p.count} packets, {p.message}" for p in report.problems]


def _fatal(stderr: str, pcap: str, ifaces: list[str], code: int) -> ReplayError:
    """A one-line error from tcpreplay's stderr."""
    text = stderr.strip()
    if "Operation not permitted" in text or "Permission denied" in text:
        return ReplayError(
            f"no permission to send on {', '.join(ifaces)}: run as root, or give tcpreplay "
            "the capabilities (setcap cap_net_raw,cap_net_admin=eip $(command -v tcpreplay))"
        )
    if "Invalid interface name" in text:
        return ReplayError(f"unknown interface among {', '.join(ifaces)}")
    lines = [s.strip() for s in text.splitlines() if s.strip()]
    msgs = [s for s in lines if not s.startswith(("Fatal Error", "Warning in"))]
    fatal_at = [i for i, s in enumerate(lines) if s.startswith("Fatal Error")]
    if fatal_at and fatal_at[0] + 1 < len(lines):
        why = lines[fatal_at[0] + 1]
    else:
        why = msgs[0] if msgs else f"exit status {code}"
    return ReplayError(f"{pcap}: tcpreplay failed: {why}")


def _send_warnings(stderr: str) -> list[str]:
    """tcpreplay's per-packet send failures, summarised by reason."""
    reasons = re.findall(r"Unable to send packet: .*?: ([^()\n]+?)\s*(?:\(errno|$)", stderr, re.M)
    counts: dict[str, int] = {}
    for r in reasons:  # a handful of distinct reasons
        counts[r] = counts.get(r, 0) + 1
    return [f"tcpreplay could not send {c} packets: {r}" for r, c in counts.items()]


def _result(
    pcap: str, ifaces: list[str], cmd: list[str], proc: subprocess.CompletedProcess[str]
) -> ReplayResult:
    stats = parse_stats(proc.stdout + "\n" + proc.stderr)
    res = ReplayResult(pcap=pcap, interfaces=ifaces, command=cmd)
    for key, value in stats.items():
        setattr(res, key, value)
    res.warnings += _send_warnings(proc.stderr)
    return res


def _iface_warnings(ifaces: list[Interface]) -> list[str]:
    out = []
    for i in ifaces:
        if not i.up:
            out.append(f"interface {i.name} is down")
        if not i.ethernet:
            out.append(f"interface {i.name} is not Ethernet (ARPHRD type {i.type})")
    return out


def replay(
    pcap_path: str | os.PathLike[str],
    iface: str,
    iface2: str | None = None,
    *,
    pps: float | None = None,
    mbps: float | None = None,
    topspeed: bool = False,
    multiplier: float | None = None,
    loop: int = 1,
    cache: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    roles: str = "flows",
    client_net: str = DEFAULT_CLIENT_NET,
    timeout: float | None = None,
) -> ReplayResult:
    """Check ``pcap_path`` against the interface(s), then replay it with tcpreplay.

    With ``iface2``, client-to-server packets leave ``iface`` and server-to-client packets
    ``iface2``, as the tcpprep ``cache`` says; without one, a cache is built from ``roles``
    (:func:`~netdiffusion_tcpreplay.build_cache`). At most one of ``pps``, ``mbps``,
    ``topspeed``, ``multiplier`` (none: the capture's own timing). ``dry_run`` checks and
    builds everything but sends nothing. Raises :class:`ReplayError` with a one-line reason.
    """
    pcap = str(pcap_path)
    rate = _rate_args(pps, mbps, topspeed, multiplier, loop)
    exe = _tcpreplay()
    if not Path(pcap).is_file():
        raise ReplayError(f"{pcap}: no such file")
    infos = [interface_info(iface)] + ([interface_info(iface2)] if iface2 else [])
    if iface2 is not None and iface2 == iface:
        raise ValueError("the two interfaces must differ")
    names = [i.name for i in infos]
    mtu = min(i.mtu for i in infos)
    where = " and ".join(names)
    report = check_capture(pcap, mtu=mtu, mtu_source=f"{where}")
    warnings = _preflight(report, where) + _iface_warnings(infos)
    cache_info: CacheReport | None = None
    tmpdir: tempfile.TemporaryDirectory[str] | None = None
    cmd = [exe, "-i", iface]
    try:
        if iface2 is not None:
            if cache is None:
                tmpdir = tempfile.TemporaryDirectory(prefix="netdiffusion-replay-")
                cache_path = Path(tmpdir.name) / "roles.cache"
                cache_info = build_cache(pcap, cache_path, roles, client_net=client_net)
            else:
                cache_path = Path(cache)
                if not cache_path.is_file():
                    raise ReplayError(f"{cache_path}: no such cache file")
            cmd += ["-I", iface2, f"--cachefile={cache_path}"]
        cmd += [*rate, pcap]
        if dry_run:
            res = ReplayResult(pcap=pcap, interfaces=names, command=cmd, dry_run=True)
        else:
            try:
                proc = subprocess.run(
                    cmd, capture_output=True, text=True, check=False, timeout=timeout
                )
            except subprocess.TimeoutExpired:
                raise ReplayError(f"{pcap}: tcpreplay did not finish in {timeout} s") from None
            if proc.returncode != 0:
                raise _fatal(proc.stderr, pcap, names, proc.returncode)
            res = _result(pcap, names, cmd, proc)
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()
    res.warnings = warnings + res.warnings
    if cache_info is not None:
        res.cache = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cache_info).items()}
    return res


def _sandbox_command(request: dict[str, Any], userns: bool | None) -> list[str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        raise ReplayError("unshare (util-linux) is not installed: cannot replay into a file")
    if userns is None:
        userns = os.geteuid() != 0
    ns = ["--user", "--map-root-user", "--net"] if userns else ["--net"]
    return [unshare, *ns, "--", sys.executable, "-m", "netdiffusion_tcpreplay._sandbox",
            json.dumps(request)]  # fmt: skip


def replay_to_file(
    pcap_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    pps: float | None = None,
    mbps: float | None = None,
    topspeed: bool = False,
    multiplier: float | None = None,
    loop: int = 1,
    dry_run: bool = False,
    timeout: float | None = None,
    userns: bool | None = None,
) -> ReplayResult:
    """Write what tcpreplay sends for ``pcap_path`` into ``out_path`` (a classic pcap); no root.

    Uses ``tcpreplay -w`` when the installed tcpreplay has it, else the network-namespace
    sandbox described in the module docstring (its timestamps are arrival times), inside a user
    namespace too when ``userns`` (default: when not root). Raises
    :class:`ReplayError` with a one-line reason.
    """
    pcap = os.path.abspath(pcap_path)
    out = Path(os.path.abspath(out_path))
    rate = _rate_args(pps, mbps, topspeed, multiplier, loop)
    exe = _tcpreplay()
    if not Path(pcap).is_file():
        raise ReplayError(f"{pcap}: no such file")
    if not out.parent.is_dir():
        raise ReplayError(f"{out.parent}: no such directory")
    report = check_capture(pcap, mtu=_VETH_MAX_MTU, mtu_source="file output")
    warnings = _preflight(report, "a file")
    tmp = out.with_name(f".{out.name}.partial")
    if tcpreplay_has_write():
        method = "tcpreplay -w"
        cmd = [exe, f"--write={tmp}", *rate, pcap]
    else:
        method = "sandbox"
        mtu = min(max(1500, report.largest_l3), _VETH_MAX_MTU)
        request = {"tcpreplay": exe, "args": rate, "pcap": pcap, "out": str(tmp), "mtu": mtu}
        cmd = _sandbox_command(request, userns)
    if dry_run:
        res = ReplayResult(pcap=pcap, interfaces=[], command=cmd, dry_run=True, method=method)
        res.warnings = warnings
        return res
    try:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ReplayError(f"{pcap}: replay into a file did not finish in {timeout} s") from None
        if method == "sandbox":
            proc = _unwrap_sandbox(proc, pcap)
        if proc.returncode != 0:
            raise _fatal(proc.stderr, pcap, ["a file"], proc.returncode)
        if not tmp.is_file():
            raise ReplayError(f"{pcap}: tcpreplay wrote no output file")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    res = _result(pcap, [], [str(c) for c in cmd], proc)
    res.output, res.method = str(out), method
    res.warnings = warnings + res.warnings
    return res


def _unwrap_sandbox(
    proc: subprocess.CompletedProcess[str], pcap: str
) -> subprocess.CompletedProcess[str]:
    """The sandbox's tcpreplay outcome, or a one-line error about the sandbox itself."""
    try:
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        lines = [s for s in proc.stderr.strip().splitlines() if s.strip()]
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        raise ReplayError(
            f"{pcap}: no network namespace for file output ({why}); tcpreplay 4.5 or later "
            "writes files itself (-w)"
        ) from None
    if info.get("error"):
        raise ReplayError(f"{pcap}: file output sandbox failed: {info['error']}")
    return subprocess.CompletedProcess(
        proc.args, int(info["returncode"]), str(info["stdout"]), str(info["stderr"])
    )
