"""Flow labels: from the folder a capture sits in, or from a CSV of flows.

The CSV format is the one of ``shared/data/ndpi/flows.csv``: a ``pcap`` column naming the
capture (matched by file name), ``endpoint_a`` and ``endpoint_b`` as ``ip:port`` (either order;
port 0 for ICMP), an optional ``l4`` column (TCP, UDP, ICMP) and any number of label columns, one
of which the user picks. Rows whose endpoints are not IPv4 are ignored.
"""

from __future__ import annotations

import csv
import ipaddress
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import PROTO_ICMP, PROTO_TCP, PROTO_UDP, Traffic
from netdiffusion.flows import flow_keys

__all__ = ["LabelReport", "label_by_csv", "label_by_folder", "label_counts", "label_flows"]

_L4_NAMES = {"TCP": PROTO_TCP, "UDP": PROTO_UDP, "ICMP": PROTO_ICMP}


@dataclass
class LabelReport:
    """How many flows got a label, and from what."""

    labelled: int = 0
    unlabelled: int = 0
    per_class: dict[str, int] = field(default_factory=dict)
    rows_ignored: int = 0  # CSV rows that could not apply (IPv6, other L4, bad endpoint)


def label_counts(traffic: Traffic) -> dict[str, int]:
    """Flows per class name (``"unlabelled"`` for flows without one)."""
    counts = np.bincount(traffic.flow_label + 1, minlength=len(traffic.classes) + 1)
    out = {name: int(c) for name, c in zip(traffic.classes, counts[1:], strict=True) if c}
    if counts[0]:
        out["unlabelled"] = int(counts[0])
    return out


def _report(traffic: Traffic, rows_ignored: int = 0) -> LabelReport:
    per_class = label_counts(traffic)
    unlabelled = per_class.pop("unlabelled", 0)
    return LabelReport(
        labelled=traffic.n_flows - unlabelled,
        unlabelled=unlabelled,
        per_class=per_class,
        rows_ignored=rows_ignored,
    )


def _first_packet_of_flows(traffic: Traffic) -> NDArray[np.int64]:
    first = np.full(traffic.n_flows, -1, np.int64)
    rows = np.arange(traffic.n_packets)[::-1]
    first[traffic.flow[rows]] = rows
    return first


def label_by_folder(traffic: Traffic) -> tuple[Traffic, LabelReport]:
    """Label every flow with the name of the folder its capture file sits in."""
    classes: list[str] = []
    file_class = np.array(
        [_intern(classes, Path(f).parent.name or "unlabelled") for f in traffic.files] + [-1],
        np.int32,
    )
    first = _first_packet_of_flows(traffic)
    labels = file_class[traffic.file[first]] if len(first) else np.zeros(0, np.int32)
    out = replace(traffic, flow_label=labels.astype(np.int32), classes=classes)
    return out, _report(out)


def _intern(names: list[str], name: str) -> int:
    if name not in names:
        names.append(name)
    return names.index(name)


def _endpoint(text: str) -> int | None:
    host, _, port = text.strip().rpartition(":")
    try:
        addr = ipaddress.IPv4Address(host)
        return (int(addr) << 16) | int(port)
    except ValueError:
        return None


def label_by_csv(
    traffic: Traffic,
    csv_path: str | os.PathLike[str],
    column: str,
    *,
    pcap_column: str = "pcap",
    endpoint_columns: tuple[str, str] = ("endpoint_a", "endpoint_b"),
) -> tuple[Traffic, LabelReport]:
    """Label flows from a CSV of flows; the label is the value of ``column``.

    Raises ValueError (one line) when the CSV lacks a needed column.
    """
    path = Path(csv_path)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        need = [pcap_column, *endpoint_columns, column]
        missing = [c for c in need if c not in header]
        if missing:
            raise ValueError(
                f"{path}: no column {', '.join(missing)} (columns: {', '.join(header)})"
            )
        file_index = {Path(f).name: i for i, f in enumerate(traffic.files)}
        classes: list[str] = []
        rows: list[tuple[int, int, int, int, int]] = []
        row_label: list[int] = []
        ignored = 0
        for row in reader:
            fidx = file_index.get(Path(row[pcap_column]).name)
            a = _endpoint(row[endpoint_columns[0]])
            b = _endpoint(row[endpoint_columns[1]])
            proto = _L4_NAMES.get((row.get("l4") or "").upper(), 0 if "l4" not in header else -1)
            if a is None or b is None or proto < 0 or not row[column]:
                ignored += 1
                continue
            if fidx is None:
                continue  # a flow of a capture not read now
            rows.append((fidx, proto, min(a, b), max(a, b), 0))
            row_label.append(_intern(classes, row[column]))
    first = _first_packet_of_flows(traffic)
    keys = flow_keys(traffic)
    flow_rows = np.stack(
        [
            traffic.file[first].astype(np.int64),
            traffic.proto[first].astype(np.int64),
            keys.lo[first],
            keys.hi[first],
            np.zeros(len(first), np.int64),
        ],
        axis=1,
    )
    labels = np.full(traffic.n_flows, -1, np.int32)
    if rows:
        csv_rows = np.array(rows, np.int64)
        has_proto = csv_rows[:, 1] != 0
        # a CSV without an l4 column matches on endpoints alone
        flow_match = flow_rows.copy()
        if not has_proto.any():
            flow_match[:, 1] = 0
        both = np.concatenate([csv_rows, flow_match])
        _, inverse = np.unique(both, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        n_ids = int(inverse.max()) + 1
        id_label = np.full(n_ids, -1, np.int32)
        csv_ids = inverse[: len(csv_rows)]
        # first CSV row wins for duplicate keys: assign in reverse order
        id_label[csv_ids[::-1]] = np.array(row_label, np.int32)[::-1]
        labels = id_label[inverse[len(csv_rows) :]]
    out = replace(traffic, flow_label=labels, classes=classes)
    return out, _report(out, ignored)


def label_flows(
    traffic: Traffic, labels: str | None, column: str = "ndpi_proto"
) -> tuple[Traffic, LabelReport | None]:
    """Label as the CLI's ``--labels`` says: ``"folder"``, a CSV path, or None (unlabelled)."""
    if labels is None:
        return traffic, None
    if labels == "folder":
        return label_by_folder(traffic)
    return label_by_csv(traffic, labels, column)
