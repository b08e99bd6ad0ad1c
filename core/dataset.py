"""The dataset file written by ``netdiffusion encode``, and nPrint CSV export.

A dataset is one safetensors file (no pickle) holding the packet columns of a
:class:`~netdiffusion.Traffic` exactly as they are: ``ts_ns`` (int64, exact), ``ip`` and ``l4``
header bytes, ``payload_len``, ``mac``, ``flow``, ``direction``, ``file`` and the per-flow
``flow_label``; the payload bytes (``payload`` / ``payload_off``) only when asked for. Its
safetensors metadata has one entry, ``netdiffusion``: a JSON schema with the format name and
version, the packet and flow counts, ``classes``, ``files``, the nPrint column layout the encoder
uses and the feature transform parameters, so a model can be trained from the file alone.

:func:`write_nprint_csv` writes what ``nprint -4 -t -u -i`` (optionally ``-R``) writes for the same
packets: nPrint's header, then one row per TCP/UDP/ICMP packet (nPrint skips the others), the
source address first. The text is built with numpy lookup tables in chunks of rows, never per
packet.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from numpy.typing import NDArray

from netdiffusion._atomic import atomic_output
from netdiffusion._traffic import IP_HDR_MAX, L4_HDR_MAX, PROTO_ICMP, PROTO_TCP, PROTO_UDP, Traffic
from netdiffusion.encoding import (
    _ABSENT,
    DIRECTION_FEATURE,
    IAT_FEATURE,
    IAT_SCALE,
    N_FEATURES,
    _byte_codes,
)
from netdiffusion.nprint import FIELDS, INDEX_COLUMN, N_BITS, NPRINT_COMMAND, csv_header

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "DatasetError",
    "dataset_schema",
    "load_dataset",
    "read_schema",
    "save_dataset",
    "write_nprint_csv",
]

#: Value of the schema's ``format`` key.
FORMAT = "netdiffusion-dataset"
#: Version of the file layout this code writes and reads.
FORMAT_VERSION = 1
_META_KEY = "netdiffusion"

# column: (dtype, trailing shape); the leading dimension is packets (flows for flow_label)
_PACKET_COLUMNS: dict[str, tuple[type[np.generic], tuple[int, ...]]] = {
    "ts_ns": (np.int64, ()),
    "ip": (np.uint8, (IP_HDR_MAX,)),
    "l4": (np.uint8, (L4_HDR_MAX,)),
    "payload_len": (np.int32, ()),
    "mac": (np.uint8, (12,)),
    "flow": (np.int64, ()),
    "direction": (np.int8, ()),
    "file": (np.int32, ()),
}


class DatasetError(ValueError):
    """A file that is not a netdiffusion dataset, or one this version cannot read."""


def dataset_schema(traffic: Traffic, *, store_payload: bool = False) -> dict[str, Any]:
    """The JSON schema stored with ``traffic`` (see the module docstring)."""
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "n_packets": traffic.n_packets,
        "n_flows": traffic.n_flows,
        "classes": list(traffic.classes),
        "files": list(traffic.files),
        "payload": bool(store_payload),
        "nprint": {
            "command": NPRINT_COMMAND,
            "index": INDEX_COLUMN,
            "n_bits": N_BITS,
            "fill": -1,
            "blocks": [{"block": b, "fields": [[n, w] for n, w in f]} for b, f in FIELDS],
        },
        "features": {
            "n_features": N_FEATURES,
            "bits": [0, N_BITS],
            "direction": {"index": DIRECTION_FEATURE, "originator": 1, "responder": -1},
            "iat": {
                "index": IAT_FEATURE,
                "transform": "log1p(gap_us) / iat_scale",
                "iat_scale": IAT_SCALE,
            },
            "padding": {"bits": -1, "direction": 0, "iat": 0},
        },
    }


def save_dataset(
    traffic: Traffic,
    path: str | os.PathLike[str],
    *,
    store_payload: bool = False,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``traffic`` to ``path`` atomically; ``extra`` is merged into the schema."""
    tensors: dict[str, NDArray[Any]] = {}
    for name, (dtype, _shape) in _PACKET_COLUMNS.items():
        tensors[name] = np.ascontiguousarray(getattr(traffic, name), dtype=dtype)
    tensors["flow_label"] = np.ascontiguousarray(traffic.flow_label, dtype=np.int32)
    if store_payload:
        tensors["payload"] = np.ascontiguousarray(traffic.payload, dtype=np.uint8)
        tensors["payload_off"] = np.ascontiguousarray(traffic.payload_off, dtype=np.int64)
    schema = dataset_schema(traffic, store_payload=store_payload)
    if extra:
        schema.update(extra)
    header, order = _safetensors_header(tensors, {_META_KEY: json.dumps(schema)})
    with atomic_output(path) as fh:
        fh.write(header)
        for name in order:  # straight from the arrays: no serialized copy of the data
            arr = tensors[name]
            if arr.size:
                fh.write(memoryview(arr.reshape(-1)).cast("B"))


# safetensors dtype names of the column dtypes, and their rank in the file: the writer of the
# format stores tensors by dtype (in this order), then by name.
_ST_DTYPES: dict[np.dtype[Any], tuple[int, str]] = {
    np.dtype(np.int64): (0, "I64"),
    np.dtype(np.int32): (1, "I32"),
    np.dtype(np.int8): (2, "I8"),
    np.dtype(np.uint8): (3, "U8"),
}


def _safetensors_header(
    tensors: dict[str, NDArray[Any]], metadata: dict[str, str]
) -> tuple[bytes, list[str]]:
    """The safetensors prefix (length, JSON header, space padding) and the data order.

    Byte for byte what ``safetensors.numpy.save`` writes for the same (native little-endian,
    contiguous) arrays, so the data can be written from the arrays themselves.
    """
    if np.little_endian is False:  # pragma: no cover - the writer stores little-endian data
        raise NotImplementedError("datasets are written on little-endian hosts only")
    order = sorted(tensors, key=lambda k: (_ST_DTYPES[tensors[k].dtype][0], k))
    items = [f'"__metadata__":{json.dumps(metadata, separators=(",", ":"))}']
    start = 0
    for name in order:
        arr = tensors[name]
        end = start + arr.nbytes
        shape = ",".join(str(d) for d in arr.shape)
        items.append(
            f'{json.dumps(name)}:{{"dtype":"{_ST_DTYPES[arr.dtype][1]}","shape":[{shape}],'
            f'"data_offsets":[{start},{end}]}}'
        )
        start = end
    text = ("{" + ",".join(items) + "}").encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text, order


def _open(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    from safetensors import safe_open

    try:
        handle = safe_open(os.fspath(path), framework="numpy")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except Exception as exc:  # safetensors raises its own error types for foreign files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(f"{path}: not a netdiffusion dataset ({reason})") from None
    meta = handle.metadata() or {}
    try:
        schema = json.loads(meta[_META_KEY])
    except (KeyError, ValueError):
        raise DatasetError(f"{path}: not a netdiffusion dataset (no netdiffusion schema)") from None
    if not isinstance(schema, dict) or schema.get("format") != FORMAT:
        raise DatasetError(f"{path}: not a netdiffusion dataset (format is not {FORMAT})")
    if schema.get("version") != FORMAT_VERSION:
        raise DatasetError(
            f"{path}: dataset format version {schema.get('version')!r}, "
            f"this netdiffusion reads version {FORMAT_VERSION}"
        )
    return handle, schema


def read_schema(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON schema of the dataset at ``path`` (raises :class:`DatasetError`)."""
    return _open(path)[1]


def load_dataset(path: str | os.PathLike[str]) -> Traffic:
    """Read a dataset written by :func:`save_dataset` (raises :class:`DatasetError`)."""
    handle, schema = _open(path)
    keys = set(handle.keys())
    cols: dict[str, NDArray[Any]] = {}
    n = int(schema.get("n_packets", -1))
    for name, (dtype, shape) in _PACKET_COLUMNS.items():
        if name not in keys:
            raise DatasetError(f"{path}: damaged dataset (no {name!r} column)")
        arr = handle.get_tensor(name)
        if arr.dtype != dtype or arr.shape != (n, *shape):
            raise DatasetError(
                f"{path}: damaged dataset ({name!r} is {arr.dtype}{list(arr.shape)}, "
                f"expected {np.dtype(dtype)}{[n, *shape]})"
            )
        cols[name] = arr
    if "flow_label" not in keys:
        raise DatasetError(f"{path}: damaged dataset (no 'flow_label' column)")
    flow_label = handle.get_tensor("flow_label").astype(np.int32, copy=False)
    if schema.get("payload") and {"payload", "payload_off"} <= keys:
        payload = handle.get_tensor("payload").astype(np.uint8, copy=False)
        payload_off = handle.get_tensor("payload_off").astype(np.int64, copy=False)
        if len(payload_off) != n + 1 or int(payload_off[-1]) != len(payload):
            raise DatasetError(f"{path}: damaged dataset (payload offsets do not match)")
    else:
        payload, payload_off = np.zeros(0, np.uint8), np.zeros(n + 1, np.int64)
    return Traffic(
        **cols,
        payload=payload,
        payload_off=payload_off,
        flow_label=flow_label,
        classes=[str(c) for c in schema.get("classes", [])],
        files=[str(f) for f in schema.get("files", [])],
    )


# -- nPrint CSV ---------------------------------------------------------------------------------

_CSV_CHUNK = 4096  # rows built at once (about 13 MB of text buffer)
_CELL = 24  # bytes per text cell: one header byte as eight ",b" / ",-1" values, NUL-padded


def _csv_cells() -> NDArray[np.void]:
    """Text of each byte code: ``,b,b,b,b,b,b,b,b`` (16 chars) for a byte, ``,-1`` x 8 for fill."""
    cells = np.zeros((_ABSENT + 1, _CELL), np.uint8)
    bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1)
    cells[:_ABSENT, 0:16:2] = ord(",")
    cells[:_ABSENT, 1:16:2] = bits + ord("0")
    cells[_ABSENT] = np.frombuffer(b",-1" * 8, np.uint8)
    return cells.view(f"V{_CELL}").ravel()


def _octet_text() -> NDArray[np.uint8]:
    """``[256, 3]``: decimal digits of each octet, NUL-padded on the right."""
    out = np.zeros((256, 3), np.uint8)
    for v in range(256):  # a 256-entry table, built once
        digits = str(v).encode()
        out[v, : len(digits)] = np.frombuffer(digits, np.uint8)
    return out


_CSV_CELLS = _csv_cells()
_OCTETS = _octet_text()


def _int_text(values: NDArray[np.int64], width: int) -> NDArray[np.uint8]:
    """``[n, width]``: ``,`` then the decimal text of each value, NUL-padded (width >= 22)."""
    n = len(values)
    out = np.zeros((n, width), np.uint8)
    mag = np.abs(values).astype(np.uint64)
    digits = np.zeros((n, 20), np.uint8)
    for k in range(19, -1, -1):  # 20 decimal places, least significant last
        digits[:, k] = (mag % 10).astype(np.uint8)
        mag //= 10
    lead = np.argmax(digits != 0, axis=1)
    lead = np.where((digits != 0).any(axis=1), lead, 19)
    pos = np.arange(20)
    text = np.where(pos >= lead[:, None], digits + ord("0"), 0).astype(np.uint8)
    out[:, 0] = ord(",")
    out[:, 1] = np.where(values < 0, ord("-"), 0)
    out[:, 2:22] = text
    return out


def write_nprint_csv(
    traffic: Traffic,
    path: str | os.PathLike[str],
    *,
    relative_timestamps: bool = False,
) -> int:
    """Write ``traffic`` as ``nprint -4 -t -u -i`` (``-R`` too with ``relative_timestamps``)
    writes it, atomically; returns the number of rows (TCP, UDP and ICMP packets)."""
    rows = np.flatnonzero(np.isin(traffic.proto, (PROTO_TCP, PROTO_UDP, PROTO_ICMP)))
    lead_cells = 2 if relative_timestamps else 1
    width = lead_cells + N_BITS // 8 + 1
    newline = np.zeros(_CELL, np.uint8)
    newline[0] = ord("\n")
    if relative_timestamps:
        us = traffic.ts_ns[rows] // 1000
        rts = np.zeros(len(rows), np.int64)
        rts[1:] = us[1:] - us[:-1]
    with atomic_output(path) as fh:
        fh.write(csv_header(relative_timestamps=relative_timestamps).encode())
        for start in range(0, len(rows), _CSV_CHUNK):
            idx = rows[start : start + _CSV_CHUNK]
            c = len(idx)
            buf = np.empty((c, width), f"V{_CELL}")
            raw = buf.view(np.uint8).reshape(c, width * _CELL)
            src = traffic.ip[idx, 12:16]
            raw[:, :_CELL] = 0
            for k in range(4):  # the four octets of the dotted source address
                raw[:, 4 * k : 4 * k + 3] = _OCTETS[src[:, k]]
                if k < 3:
                    raw[:, 4 * k + 3] = ord(".")
            if relative_timestamps:
                raw[:, _CELL : 2 * _CELL] = _int_text(rts[start : start + c], _CELL)
            codes = _byte_codes(traffic.ip[idx], traffic.l4[idx], False)
            buf[:, lead_cells:-1] = _CSV_CELLS[codes]
            raw[:, -_CELL:] = newline
            flat = raw.ravel()
            fh.write(memoryview(flat[flat != 0]))
    return len(rows)
