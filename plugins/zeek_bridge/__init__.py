"""netdiffusion's Zeek log producer (import name ``netdiffusion_zeek``).

Writes Zeek's ``conn.log`` (TSV or JSON lines, readable by ``zat``) from captures or straight
from :class:`netdiffusion.Traffic` (generated traffic, chunk by chunk), following Zeek's own
semantics: connection tracking with Zeek's timers, ``conn_state``, ``history``, sizes from TCP
sequence numbers, missed bytes, bad checksums, local networks and ``service`` from payload
signatures. With a ``zeek`` binary on PATH the real Zeek can run instead (``--engine zeek``).

Registered with netdiffusion through the entry point ``zeek = netdiffusion_zeek.plugin``.
"""

from netdiffusion.api import scapy_ext as scapy_ext  # conf.exts asks every top package

from ._api import ConnLogWriter, ZeekError, conn_log, run_zeek, write_conn_logs
from ._conn import DEFAULT_LIKELY_SERVER_PORTS, DEFAULT_LOCAL_NETS, ConnOptions
from ._log import CONN_FIELDS, CONN_TYPES

__all__ = [
    "CONN_FIELDS",
    "CONN_TYPES",
    "DEFAULT_LIKELY_SERVER_PORTS",
    "DEFAULT_LOCAL_NETS",
    "ConnLogWriter",
    "ConnOptions",
    "ZeekError",
    "conn_log",
    "run_zeek",
    "write_conn_logs",
]
