"""Zeek's log formats for conn.log: the ASCII (TSV) writer with its header, and JSON lines.

TSV: ``#separator \\x09``, ``#set_separator``, ``#empty_field``, ``#unset_field``, ``#path``,
``#open``, ``#fields``, ``#types``, the rows, and ``#close`` last. Unset values are ``-``, empty
strings and sets ``(empty)``, booleans ``T``/``F``, times and intervals with 6 decimals; the
separator, non-printable bytes and a lone ``-`` inside strings are escaped as ``\\xNN``.
JSON: one object per line, dotted keys (``id.orig_h``), unset fields left out.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from netdiffusion._atomic import atomic_output

__all__ = [
    "CONN_FIELDS",
    "CONN_TYPES",
    "conn_columns",
    "conn_rows",
    "make_uid_bytes",
    "make_uids",
    "write_conn_log",
    "write_conn_tsv",
]

CONN_FIELDS = (
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
    "ip_proto",
)
CONN_TYPES = (
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "enum",
    "string",
    "interval",
    "count",
    "count",
    "string",
    "bool",
    "bool",
    "count",
    "string",
    "count",
    "count",
    "count",
    "count",
    "set[string]",
    "count",
)
_PROTO_NAME = {6: "tcp", 17: "udp", 1: "icmp"}
_B62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)


_PLAIN = re.compile(r"[^\x00-\x1f\x7f\\,]*")


def escape(text: str, sep: str = "\t", set_sep: str | None = None) -> str:
    """A string value as Zeek's ASCII writer writes it."""
    if sep == "\t" and _PLAIN.fullmatch(text) and text not in ("", "-"):
        return text
    if text == "":
        return "(empty)"
    if text == "-":
        return "\\x2d"
    out = []
    for ch in text:
        code = ord(ch)
        if ch in ("\\", sep, set_sep) or code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    return "".join(out)


def _addr(v: NDArray[np.int64]) -> list[str]:
    a = v.astype(np.int64)
    parts = [(a >> s) & 0xFF for s in (24, 16, 8, 0)]
    return [
        f"{p0}.{p1}.{p2}.{p3}" for p0, p1, p2, p3 in zip(*(p.tolist() for p in parts), strict=True)
    ]


def _secs(ns: NDArray[np.int64]) -> list[str]:
    us = (ns.astype(np.int64) + 500) // 1000
    return [
        f"{q}.{r:06d}"
        for q, r in zip((us // 1_000_000).tolist(), (us % 1_000_000).tolist(), strict=True)
    ]


def make_uid_bytes(k: int, rng: np.random.Generator) -> NDArray[np.uint8]:
    """``k`` Zeek-style connection uids ("C" and 17 base-62 characters) as a [k, 18] byte matrix."""
    digits = rng.integers(0, 62, size=(k, 17))
    return np.concatenate([np.full((k, 1), ord("C"), np.uint8), _B62[digits]], axis=1)


def make_uids(k: int, rng: np.random.Generator) -> list[str]:
    """``k`` Zeek-style connection uids ("C" and 17 base-62 characters)."""
    if k == 0:
        return []
    return make_uid_bytes(k, rng).view("S18").ravel().astype("U18").tolist()


def conn_columns(conns: dict[str, NDArray], uids: list[str]) -> dict[str, list[Any]]:
    """Columns of Python values keyed by conn.log field (None: unset)."""
    k = len(uids)
    if k == 0:
        return {f: [] for f in CONN_FIELDS}
    dur = conns["duration"]
    has = (dur > 0).tolist()

    def maybe(values: list[Any]) -> list[Any]:
        return [v if h else None for v, h in zip(values, has, strict=True)]

    proto = conns["proto"].tolist()
    return {
        "ts": _secs(conns["ts"]),
        "uid": list(uids),
        "id.orig_h": _addr(conns["orig_h"]),
        "id.orig_p": conns["orig_p"].tolist(),
        "id.resp_h": _addr(conns["resp_h"]),
        "id.resp_p": conns["resp_p"].tolist(),
        "proto": [_PROTO_NAME.get(p, "unknown_transport") for p in proto],
        "service": list(conns["service"]),
        "duration": maybe(_secs(np.maximum(dur, 0))),
        "orig_bytes": maybe(conns["orig_bytes"].tolist()),
        "resp_bytes": maybe(conns["resp_bytes"].tolist()),
        "conn_state": list(conns["conn_state"]),
        "local_orig": conns["local_orig"].tolist(),
        "local_resp": conns["local_resp"].tolist(),
        "missed_bytes": conns["missed_bytes"].tolist(),
        "history": list(conns["history"]),
        "orig_pkts": conns["orig_pkts"].tolist(),
        "orig_ip_bytes": conns["orig_ip_bytes"].tolist(),
        "resp_pkts": conns["resp_pkts"].tolist(),
        "resp_ip_bytes": conns["resp_ip_bytes"].tolist(),
        "tunnel_parents": [None] * k,
        "ip_proto": proto,
    }


def conn_rows(conns: dict[str, NDArray], uids: list[str]) -> list[dict[str, object]]:
    """Rows as Python values keyed by field name (None: unset)."""
    cols = conn_columns(conns, uids)
    return [
        dict(zip(CONN_FIELDS, values, strict=True)) for values in zip(*cols.values(), strict=True)
    ]


def _tsv_value(value: object, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "bool":
        return "T" if value else "F"
    if kind in ("string", "enum"):
        return escape(str(value))
    if kind.startswith("set["):
        items = list(value)  # type: ignore[call-overload]
        if not items:
            return "(empty)"
        return ",".join(escape(str(x), set_sep=",") for x in items)
    return str(value)


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d-%H-%M-%S", time.localtime(t))


_TRUSTED = ("uid", "proto", "conn_state", "history", "service")  # our own alphabets: no escapes


def _tsv_column(values: list[object], kind: str, trusted: bool = False) -> list[str]:
    if kind in ("count", "port"):
        return ["-" if v is None else str(v) for v in values]
    if kind in ("time", "interval"):
        return ["-" if v is None else v for v in values]  # type: ignore[misc]
    if kind == "bool":
        return ["T" if v else "F" for v in values]
    if trusted:
        return ["-" if v is None else v for v in values]  # type: ignore[misc]
    return [_tsv_value(v, kind) for v in values]


def _as_columns(data: list[dict[str, object]] | dict[str, list[object]]) -> dict[str, list]:
    if isinstance(data, dict):
        return data
    return {f: [row[f] for row in data] for f in CONN_FIELDS}


def tsv_lines(
    data: list[dict[str, object]] | dict[str, list[object]], opened: float, closed: float
) -> Iterator[str]:
    """The lines of a conn.log in Zeek's ASCII format, from rows or columns."""
    cols = _as_columns(data)
    yield "#separator \\x09"
    yield "#set_separator\t,"
    yield "#empty_field\t(empty)"
    yield "#unset_field\t-"
    yield "#path\tconn"
    yield f"#open\t{_stamp(opened)}"
    yield "#fields\t" + "\t".join(CONN_FIELDS)
    yield "#types\t" + "\t".join(CONN_TYPES)
    if cols["ts"]:
        text = [
            _tsv_column(cols[f], t, f in _TRUSTED)
            for f, t in zip(CONN_FIELDS, CONN_TYPES, strict=True)
        ]
        yield from map("\t".join, zip(*text, strict=True))
    yield f"#close\t{_stamp(closed)}"


def _json_value(value: object, kind: str) -> object:
    if kind in ("time", "interval"):
        return float(str(value))
    return value


def json_lines(data: list[dict[str, object]] | dict[str, list[object]]) -> Iterator[str]:
    """The lines of a conn.log in Zeek's JSON format (unset fields left out)."""
    cols = _as_columns(data)
    for values in zip(*(cols[f] for f in CONN_FIELDS), strict=True):
        row = dict(zip(CONN_FIELDS, values, strict=True))
        obj = {
            f: _json_value(row[f], t)
            for f, t in zip(CONN_FIELDS, CONN_TYPES, strict=True)
            if row[f] is not None
        }
        yield json.dumps(obj, separators=(",", ":"))


def write_conn_log(
    rows: list[dict[str, object]] | dict[str, list[object]],
    path: str | os.PathLike[str],
    *,
    as_json: bool = False,
    opened: float | None = None,
) -> Path:
    """Write ``rows`` (or columns) to ``path`` atomically, as TSV or JSON lines."""
    target = Path(path)
    start = time.time() if opened is None else opened
    lines = json_lines(rows) if as_json else tsv_lines(rows, start, time.time())
    with atomic_output(target) as fh:
        text = "\n".join(lines) + "\n"
        fh.write(text.encode("utf-8", "surrogateescape"))
    return target


# -- vectorized TSV: every column as a zero-padded byte matrix, zeros dropped at the end ---------

_BLOCK = 1 << 16  # rows formatted at once (bounds the byte matrices' memory)


def _octets() -> NDArray[np.uint8]:
    table = np.zeros((256, 3), np.uint8)
    for i in range(256):
        text = str(i).encode()
        table[i, : len(text)] = np.frombuffer(text, np.uint8)
    return table


_OCTET = _octets()  # decimal text of 0..255, left-aligned, zero padded


def _byte_col(byte: int, k: int) -> NDArray[np.uint8]:
    return np.full((k, 1), byte, np.uint8)


def _digit_groups() -> NDArray[np.uint8]:
    """Text of 0..9999 as 4 bytes: zero padded, then blank padded ("0" kept), then blank padded."""
    i = np.arange(10_000)[:, None]
    power = np.array([1000, 100, 10, 1])[None, :]
    digits = ((i // power) % 10 + 48).astype(np.uint8)
    lead = i >= power  # not a leading zero
    units = lead | (power == 1)  # the lowest group shows a lone "0"
    return np.stack([digits, digits * units, digits * lead]).reshape(30_000, 4)


_DIGITS4 = _digit_groups()


def _int_bytes(v: NDArray[np.int64]) -> NDArray[np.uint8]:
    """Decimal text of integers (as ``str(int)``), right-aligned and zero padded."""
    v = np.asarray(v, np.int64)
    neg = v < 0
    rest = np.abs(v)
    width = len(str(int(rest.max()))) if len(rest) else 1
    blocks = []
    for p in range((width + 3) // 4):  # four digits at a time, lowest first
        rest, group = np.divmod(rest, 10_000)
        table = np.where(rest > 0, 0, 10_000 if p == 0 else 20_000)
        blocks.append(_DIGITS4[table + group])
    if neg.any():
        blocks.append(np.where(neg, ord("-"), 0).astype(np.uint8)[:, None])
    return np.concatenate(blocks[::-1], axis=1)


def _secs_bytes(ns: NDArray[np.int64]) -> NDArray[np.uint8]:
    """Seconds with 6 decimals (microseconds rounded half up), as :func:`_secs` writes them."""
    us = (ns.astype(np.int64) + 500) // 1000
    q, r = np.divmod(us, 1_000_000)
    high, low = np.divmod(r, 10_000)
    dot = _byte_col(ord("."), len(r))
    return np.concatenate([_int_bytes(q), dot, _DIGITS4[high][:, 2:], _DIGITS4[low]], axis=1)


def _addr_bytes(v: NDArray[np.int64]) -> NDArray[np.uint8]:
    a = v.astype(np.int64)
    parts = []
    for shift in (24, 16, 8, 0):
        if shift != 24:
            parts.append(_byte_col(ord("."), len(a)))
        parts.append(_OCTET[(a >> shift) & 0xFF])
    return np.concatenate(parts, axis=1)


def _unset(matrix: NDArray[np.uint8], unset: NDArray[np.bool_]) -> NDArray[np.uint8]:
    """``matrix`` with the ``unset`` rows replaced by ``-``."""
    if unset.any():
        matrix = matrix.copy()
        matrix[unset] = 0
        matrix[unset, 0] = ord("-")
    return matrix


def _text_bytes(values: NDArray[np.object_]) -> NDArray[np.uint8]:
    """ASCII strings (None: ``-``) of our own alphabets as a left-aligned zero-padded matrix."""
    obj = np.asarray(values, object)
    if len(obj) == 0:
        return np.zeros((0, 1), np.uint8)
    fixed = np.where(obj == None, "-", obj).astype("S")  # noqa: E711
    return fixed.view(np.uint8).reshape(len(obj), fixed.dtype.itemsize)


def _proto_table() -> NDArray[np.uint8]:
    width = max(len("unknown_transport"), *(len(x) for x in _PROTO_NAME.values()))
    table = np.zeros((256, width), np.uint8)
    for i in range(256):
        text = _PROTO_NAME.get(i, "unknown_transport").encode()
        table[i, : len(text)] = np.frombuffer(text, np.uint8)
    return table


_PROTO_TEXT = _proto_table()


def _tsv_block(conns: dict[str, NDArray], uids: NDArray[np.uint8]) -> bytes:
    """The TSV rows of ``conns`` (block of rows), as :func:`tsv_lines` writes them."""
    k = len(uids)
    dur = conns["duration"]
    unset = ~(dur > 0)
    proto = conns["proto"].astype(np.int64)
    tf = np.array([ord("F"), ord("T")], np.uint8)
    cols = [
        _secs_bytes(conns["ts"]),
        uids,
        _addr_bytes(conns["orig_h"]),
        _int_bytes(conns["orig_p"]),
        _addr_bytes(conns["resp_h"]),
        _int_bytes(conns["resp_p"]),
        _PROTO_TEXT[proto & 0xFF] if np.all((proto >= 0) & (proto < 256)) else None,
        _text_bytes(conns["service"]),
        _unset(_secs_bytes(np.maximum(dur, 0)), unset),
        _unset(_int_bytes(conns["orig_bytes"]), unset),
        _unset(_int_bytes(conns["resp_bytes"]), unset),
        _text_bytes(conns["conn_state"]),
        tf[conns["local_orig"].astype(np.int64)][:, None],
        tf[conns["local_resp"].astype(np.int64)][:, None],
        _int_bytes(conns["missed_bytes"]),
        _text_bytes(conns["history"]),
        _int_bytes(conns["orig_pkts"]),
        _int_bytes(conns["orig_ip_bytes"]),
        _int_bytes(conns["resp_pkts"]),
        _int_bytes(conns["resp_ip_bytes"]),
        _byte_col(ord("-"), k),
        _int_bytes(proto),
    ]
    if cols[6] is None:  # a protocol number outside 0..255: name it as conn_columns does
        names = [_PROTO_NAME.get(p, "unknown_transport") for p in np.unique(proto).tolist()]
        lookup = dict(zip(np.unique(proto).tolist(), names, strict=True))
        cols[6] = _text_bytes(np.array([lookup[p] for p in proto.tolist()], object))
    tab, newline = _byte_col(9, k), _byte_col(10, k)
    parts: list[NDArray[np.uint8]] = []
    for col in cols:
        parts += [col, tab]
    parts[-1] = newline
    rows = np.concatenate(parts, axis=1)
    return rows[rows != 0].tobytes()


def write_conn_tsv(
    conns: dict[str, NDArray],
    uids: NDArray[np.uint8],
    path: str | os.PathLike[str],
    *,
    opened: float | None = None,
) -> Path:
    """Write the TSV conn.log of ``conns`` (from :func:`connections`) with ``uids`` atomically.

    The same bytes as :func:`write_conn_log` of :func:`conn_columns`, formatted column by column
    over all connections at once (``uids`` as the [k, 18] matrix of :func:`make_uid_bytes`).
    """
    target = Path(path)
    start = time.time() if opened is None else opened
    k = len(uids)
    head = [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\tconn",
        f"#open\t{_stamp(start)}",
        "#fields\t" + "\t".join(CONN_FIELDS),
        "#types\t" + "\t".join(CONN_TYPES),
    ]
    with atomic_output(target) as fh:
        fh.write(("\n".join(head) + "\n").encode())
        for lo in range(0, k, _BLOCK):  # blocks of rows, not single rows
            block = {name: col[lo : lo + _BLOCK] for name, col in conns.items()}
            fh.write(_tsv_block(block, uids[lo : lo + _BLOCK]))
        fh.write(f"#close\t{_stamp(time.time())}\n".encode())
    return target
