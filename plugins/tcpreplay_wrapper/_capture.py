"""Capture what arrives on an interface with tcpdump (or dumpcap) into a pcap file.

Used by the sandboxed file output of :func:`netdiffusion_tcpreplay.replay_to_file`, by the
tests and by the rate benchmark: start it, wait until the tool says it is listening, send, then
stop it. Argument lists only, never a shell.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from ._iface import ReplayError

__all__ = ["Capture", "capture_tool", "in_initial_user_namespace"]

_READY = (b"listening on", b"Capturing on")


def in_initial_user_namespace() -> bool:
    """True unless this process runs in a user namespace (where tcpdump cannot drop privileges)."""
    try:
        text = Path("/proc/self/uid_map").read_text().split()
    except OSError:
        return True
    return text[:3] == ["0", "0", "4294967295"]


def capture_tool() -> str:
    """``"tcpdump"`` where it works (root outside a user namespace), else ``"dumpcap"``."""
    order = ["tcpdump", "dumpcap"] if in_initial_user_namespace() else ["dumpcap", "tcpdump"]
    for tool in order:
        if shutil.which(tool):
            return tool
    raise ReplayError("no capture tool: install tcpdump (or tshark, for dumpcap)")


class Capture:
    """``with Capture(iface, path):`` captures every frame arriving on ``iface`` into ``path``.

    ``netns`` runs the tool in that named network namespace (``ip netns exec``). On leaving the
    block the tool gets ``settle`` seconds to write the last frames, then SIGINT. Frames are
    kept whole up to ``snaplen`` bytes (keep it near the largest frame: tcpdump's ring is sized
    from it).
    """

    def __init__(
        self,
        iface: str,
        path: str | os.PathLike[str],
        *,
        netns: str | None = None,
        tool: str | None = None,
        settle: float = 0.3,
        timeout: float = 10.0,
        snaplen: int = 65535,
    ) -> None:
        self.iface = iface
        self.path = Path(path)
        self.netns = netns
        self.tool = tool or capture_tool()
        self.settle = settle
        self.timeout = timeout
        self.snaplen = snaplen
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = b""

    def command(self) -> list[str]:
        """The capture command (classic pcap, whole frames, unbuffered output)."""
        exe = shutil.which(self.tool) or self.tool
        snap = str(self.snaplen)
        if self.tool == "dumpcap":
            cmd = [exe, "-i", self.iface, "-w", str(self.path), "-s", snap, "-P", "-B", "16"]
        else:
            # Immediate mode, so every frame is in the file before SIGINT; its kernel ring has
            # one slot of about ``snaplen`` bytes per frame, so the buffer holds 8192 of them.
            kib = min(1 << 20, max(4096, (self.snaplen + 128) * 8192 // 1024))
            cmd = [exe, "-i", self.iface, "-w", str(self.path), "-s", snap, "-U", "-n"]
            cmd += ["--immediate-mode", "-B", str(kib), "-Z", "root"]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        return cmd

    def __enter__(self) -> Capture:
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        deadline = time.monotonic() + self.timeout
        buf = b""
        while not any(m in buf for m in _READY):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self._kill()
                why = buf.decode(errors="replace").strip().splitlines()
                raise ReplayError(
                    f"{self.tool} on {self.iface} did not start: "
                    + (why[-1] if why else "timed out waiting for it")
                )
            ready, _, _ = select.select([fd], [], [], min(left, 0.1))
            if ready:
                chunk = os.read(fd, 4096)
                buf += chunk
        self.stderr = buf
        return self

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> str:
        """Stop the tool (after ``settle`` seconds); returns its stderr."""
        if self.proc is None:
            return ""
        time.sleep(self.settle)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            err = b""
        self.stderr += err or b""
        self.proc = None
        return self.stderr.decode(errors="replace")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._kill()
            self.proc = None
        else:
            self.stop()
