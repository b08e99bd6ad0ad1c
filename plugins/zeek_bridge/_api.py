"""The Python API: conn.log from captures or from :class:`Traffic`, streamed chunk by chunk."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from netdiffusion._traffic import Traffic
from netdiffusion.capture import ReadReport, iter_captures

from ._conn import ConnOptions, connections, parse_nets, timed_out_connections
from ._log import conn_columns, make_uid_bytes, write_conn_log, write_conn_tsv
from ._packets import PacketTable, packet_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ConnLogWriter", "ZeekError", "conn_log", "run_zeek", "write_conn_logs"]

_TIMEOUT_NS = {6: 300 * 10**9, 17: 60 * 10**9, 1: 60 * 10**9}


class ZeekError(Exception):
    """A one-line error of the Zeek bridge (bad option, missing zeek binary, zeek failure)."""


class ConnLogWriter:
    """Build a conn.log from time-ordered :class:`Traffic` chunks and write it on :meth:`close`.

    Connections are tracked by 5-tuple and Zeek's timeouts across chunks (flow indices of the
    chunks are not used, so they may restart per chunk). A connection is finished, and its
    packets dropped from memory, once no packet of its key came for the protocol's inactivity
    timeout. ``options`` are those of :class:`ConnOptions` (``ignore_checksums``, ``bare``, ...).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        json: bool = False,
        *,
        seed: int = 0,
        **options: Any,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.json = json
        self.options = ConnOptions(**options)
        self._nets = parse_nets(self.options.ignore_checksums_nets)
        self._pending = PacketTable.empty()
        self._done: list[dict[str, np.ndarray]] = []
        self._rng = np.random.default_rng(seed)
        self._opened = time.time()
        self.closed = False

    def add(self, traffic: Traffic) -> None:
        """Add a chunk of packets (time-ordered after the previous chunks)."""
        if self.closed:
            raise ZeekError("ConnLogWriter: add() after close()")
        table = packet_table(
            traffic,
            ignore_checksums=self.options.ignore_checksums,
            ignore_checksums_nets=self._nets,
        )
        if table.n == 0:
            return
        if self._pending.n:
            pending = PacketTable.concat([self._pending, table])
            order = np.argsort(pending.ts, kind="stable")
            pending = pending.take(order)
        else:
            pending = table
        self._pending = self._flush(pending, final=False)

    def _flush(self, pk: PacketTable, final: bool) -> PacketTable:
        """Finish the connections that can get no more packets; return the rest."""
        if pk.n == 0:
            return pk
        if final:
            conns, rest = connections(pk, self.options), PacketTable.empty()
        else:
            horizon = int(pk.ts.max())
            if horizon - int(pk.ts.min()) < min(_TIMEOUT_NS.values()):
                return pk  # nothing can have timed out yet
            conns, used = timed_out_connections(pk, self.options, horizon)
            rest = pk if not used.any() else pk.take(np.flatnonzero(~used))
        if conns:
            self._done.append(conns)
        return rest

    def connections(self) -> dict[str, np.ndarray]:
        """Every connection so far (open ones included), by start time, with uids."""
        parts = [*self._done]
        if self._pending.n:
            parts.append(connections(self._pending, self.options))
        parts = [p for p in parts if p]
        if not parts:
            return {}
        joined = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        order = np.argsort(joined["ts"], kind="stable")
        return {k: v[order] for k, v in joined.items()}

    def columns(self) -> dict[str, list[object]]:
        """conn.log columns of Python values keyed by field (None: unset), by start time."""
        conns = self.connections()
        uids = self._uids(len(conns.get("ts", ())))
        return conn_columns(conns, uids.view("S18").ravel().astype("U18").tolist())

    def _uids(self, k: int) -> np.ndarray:
        """The [k, 18] uid bytes of the next ``k`` connections (one draw of the writer's seed)."""
        return make_uid_bytes(k, np.random.default_rng(self._rng.integers(2**63)))

    def rows(self) -> list[dict[str, object]]:
        """Rows as Python values keyed by conn.log field (None: unset)."""
        cols = self.columns()
        return [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)]

    def close(self) -> Path:
        """Finish every connection and write ``conn.log`` (TSV or JSON) atomically."""
        self._pending = self._flush(self._pending, final=True)
        self.closed = True
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / "conn.log"
        if self.json:
            return write_conn_log(self.columns(), path, as_json=True, opened=self._opened)
        conns = self.connections()
        uids = self._uids(len(conns.get("ts", ())))
        return write_conn_tsv(conns, uids, path, opened=self._opened)

    def __enter__(self) -> ConnLogWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None and not self.closed:
            self.close()


def _feed(
    writer: ConnLogWriter,
    source: Traffic | Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
    progress: Callable[[int], None] | None = None,
    on_refused: Callable[[str], None] | None = None,
) -> None:
    if isinstance(source, Traffic):
        writer.add(source)
        return
    paths = [source] if isinstance(source, str | os.PathLike) else list(source)
    reports: list[ReadReport] = []
    skip = on_refused is not None  # else a file that is not a capture raises CaptureError
    for chunk in iter_captures([str(p) for p in paths], reports=reports, skip_errors=skip):
        writer.add(chunk)
        if progress is not None:
            progress(chunk.n_packets)
    for report in reports:
        if report.error is not None and on_refused is not None:
            on_refused(report.error)


def write_conn_logs(
    source: Traffic | Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    json: bool = False,
    progress: Callable[[int], None] | None = None,
    on_refused: Callable[[str], None] | None = None,
    **options: Any,
) -> Path:
    """conn.log of ``source`` (Traffic, or capture paths) written into ``out_dir``.

    A file that is not a readable capture raises :class:`~netdiffusion.capture.CaptureError`,
    or with ``on_refused`` is skipped and its one-line reason passed to it.
    """
    writer = ConnLogWriter(out_dir, json=json, **options)
    _feed(writer, source, progress, on_refused)
    return writer.close()


def conn_log(
    source: Traffic | Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
    **options: Any,
) -> pd.DataFrame:
    """conn.log of ``source`` (Traffic, a capture path, or paths) as a pandas DataFrame via zat.

    The log is written in Zeek's TSV format to a temporary folder and read back with
    ``zat.log_to_dataframe.LogToDataFrame``, so the frame is exactly what zat gives for a log
    written by Zeek. ``options`` are those of :class:`ConnOptions`.
    """
    from zat.log_to_dataframe import LogToDataFrame

    with tempfile.TemporaryDirectory(prefix="netdiffusion-zeek-") as tmp:
        path = write_conn_logs(source, tmp, **options)
        return LogToDataFrame().create_dataframe(str(path))


def run_zeek(
    capture: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    json: bool = False,
    ignore_checksums: bool = False,
    bare: bool = False,
) -> Path:
    """Run the real ``zeek`` on ``capture`` with its logs written into ``out_dir``."""
    exe = shutil.which("zeek")
    if exe is None:
        raise ZeekError("--engine zeek: no 'zeek' executable on PATH (use --engine ours)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        exe,
        *(["-b", "base/protocols/conn"] if bare else []),
        *(["-C"] if ignore_checksums else []),
    ]
    cmd += ["-r", str(Path(capture).resolve())]
    if json:
        cmd.append("LogAscii::use_json=T")
    done = subprocess.run(cmd, cwd=out, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise ZeekError(f"{capture}: zeek exited with status {done.returncode}: {last}")
    return out / "conn.log"
