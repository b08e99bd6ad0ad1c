"""``netdiffusion generate --zeek DIR`` / ``--zeek-json DIR``: conn.log straight from the
generated packets, no pcap round trip."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from netdiffusion._traffic import Traffic

__all__ = ["ZeekSink", "open_json_sink", "open_tsv_sink"]


class ZeekSink:
    """A generate sink feeding every chunk to a :class:`~netdiffusion_zeek.ConnLogWriter`."""

    def __init__(self, out_dir: str | os.PathLike[str], *, json: bool) -> None:
        from netdiffusion_zeek._api import ConnLogWriter

        self.writer = ConnLogWriter(out_dir, json=json)
        self.connections = 0

    def add(self, traffic: Traffic) -> None:
        """Feed one time-ordered chunk of generated traffic."""
        self.writer.add(traffic)

    def close(self, output: os.PathLike[str] | None = None) -> str:
        """Write conn.log; the line to show."""
        path = self.writer.close()
        rows = sum(1 for line in Path(path).read_text().splitlines() if line[:1] not in "#")
        return f"Zeek conn.log with {rows} connections written to {path}"


def open_tsv_sink(value: str, **_context: Any) -> ZeekSink:
    """The ``--zeek DIR`` sink (Zeek's TSV format)."""
    return ZeekSink(value, json=False)


def open_json_sink(value: str, **_context: Any) -> ZeekSink:
    """The ``--zeek-json DIR`` sink (JSON lines)."""
    return ZeekSink(value, json=True)
