"""Capture reader: pcap / pcapng files (optionally gzip-compressed) to :class:`Traffic` columns.

Only IPv4 TCP, UDP and ICMP packets are kept; every other record is counted by reason in the
:class:`ReadReport`. Reading streams each file block by block with bounded memory;
:func:`iter_captures` reads many files and decodes small ones together.
"""

from ._reader import iter_capture, iter_captures, read_capture, read_captures
from ._report import SKIP_REASONS, CaptureError, ReadReport

__all__ = [
    "SKIP_REASONS",
    "CaptureError",
    "ReadReport",
    "iter_capture",
    "iter_captures",
    "read_capture",
    "read_captures",
]
