"""netdiffusion's tcpreplay integration (import name ``netdiffusion_tcpreplay``).

What it delivers:

- :func:`check_capture` (``netdiffusion check``): what tcpreplay, tcpprep and tcpcapinfo would
  trip over in a capture (link type, snaplen, MTU, timestamps, checksums, lengths), one problem
  kind per line with counts;
- :func:`replay` (``netdiffusion replay``): a preflight against the real interface(s), then
  tcpreplay, its statistics parsed into a :class:`ReplayResult`; dual-interface replay with a
  tcpprep cache built from the roles we know (:func:`build_cache`);
- :func:`replay_to_file` (``netdiffusion replay -w``): what tcpreplay sends, into a pcap,
  without root.

Registered with netdiffusion through the entry point ``tcpreplay = netdiffusion_tcpreplay.plugin``.
"""

from netdiffusion.api import scapy_ext as scapy_ext  # conf.exts asks every top package

from ._cache import (
    C2S,
    DEFAULT_CLIENT_NET,
    NOSEND,
    ROLES,
    S2C,
    CacheReport,
    build_cache,
    read_cache,
    write_cache,
)
from ._capture import Capture
from ._check import BLOCKING, DEFAULT_MTU, CheckReport, Problem, check_capture
from ._iface import Interface, ReplayError, interface_info
from ._replay import ReplayResult, parse_stats, replay, replay_to_file, tcpreplay_has_write

__all__ = [
    "BLOCKING",
    "C2S",
    "DEFAULT_CLIENT_NET",
    "DEFAULT_MTU",
    "NOSEND",
    "ROLES",
    "S2C",
    "CacheReport",
    "Capture",
    "CheckReport",
    "Interface",
    "Problem",
    "ReplayError",
    "ReplayResult",
    "build_cache",
    "check_capture",
    "interface_info",
    "parse_stats",
    "read_cache",
    "replay",
    "replay_to_file",
    "tcpreplay_has_write",
    "write_cache",
]
