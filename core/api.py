"""The Python API behind ``netdiffusion.encode``, ``netdiffusion.train`` and
``netdiffusion.to_traffic``: what they accept (a :class:`Traffic`, capture paths, foreign
packets such as a Scapy ``PacketList`` converted by a plugin's ``to_traffic`` hook, or a
``{class name: any of those}`` mapping) and how it becomes labelled flows."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from netdiffusion._traffic import Traffic

if TYPE_CHECKING:
    from netdiffusion.model import TrainResult

__all__ = ["encode", "scapy_ext", "to_traffic", "train"]


def _is_paths(obj: object) -> bool:
    if isinstance(obj, (str, os.PathLike)):
        return True
    return (
        isinstance(obj, (list, tuple))
        and bool(obj)
        and all(isinstance(p, (str, os.PathLike)) for p in obj)
    )


def to_traffic(data: Any, *, name: str | None = None) -> Traffic:
    """Packets as a :class:`Traffic` (no flows assembled): a Traffic as it is, capture paths
    read, or foreign packets (a Scapy ``PacketList``, a list of packets) converted by the
    plugins' ``to_traffic`` hook. ``name`` replaces the single ``files`` entry of converted
    packets. Raises ValueError (one line) for anything else.
    """
    if isinstance(data, Traffic):
        return data
    if _is_paths(data):
        from netdiffusion.inputs import expand_captures, read_captures

        paths = [data] if isinstance(data, (str, os.PathLike)) else list(data)
        return read_captures(expand_captures(paths), progress=False, strict=True)[0]
    from netdiffusion.plugins import default_plugins

    out = default_plugins().pm.hook.to_traffic(obj=data)
    if out is None:
        raise ValueError(
            f"cannot use a {type(data).__name__} as traffic: give a Traffic, capture paths, or "
            "packets (a Scapy PacketList or list of packets, with the scapy plugin)"
        )
    if name is not None and len(out.files) == 1:
        out = replace(out, files=[name])
    return out


def _assembled(traffic: Traffic) -> Traffic:
    """``traffic`` with flows (assembled unless every packet already has one)."""
    from netdiffusion.flows import assemble_flows

    if traffic.n_packets and traffic.n_flows and int(traffic.flow.min()) >= 0:
        return traffic
    return assemble_flows(traffic)


def _flows(data: Any, labels: str | None, label_column: str, keep_payload: bool) -> Traffic:
    """Assembled, labelled flows of any accepted input (see the module docstring)."""
    import numpy as np

    from netdiffusion.labels import label_flows

    if isinstance(data, Mapping):
        if labels is not None:
            raise ValueError("labels= cannot be combined with a {class: packets} mapping")
        if not data:
            raise ValueError("the {class: packets} mapping is empty")
        parts = []
        for cls, part in data.items():
            t = _assembled(to_traffic(part, name=str(cls)))
            parts.append(replace(t, flow_label=np.zeros(t.n_flows, np.int32), classes=[str(cls)]))
        return Traffic.concat(parts)
    if _is_paths(data):
        from netdiffusion.inputs import read_flows

        paths = [data] if isinstance(data, (str, os.PathLike)) else list(data)
        return read_flows(
            paths, labels=labels, label_column=label_column, keep_payload=keep_payload,
            progress=False,
        )[0]  # fmt: skip
    packets = not isinstance(data, Traffic)
    traffic = _assembled(to_traffic(data))
    if packets and labels is not None:  # packets carry no folder or file: a class name
        if labels == "folder":
            raise ValueError('labels="folder" needs capture paths; for packets give a class name')
        return replace(
            traffic, flow_label=np.zeros(traffic.n_flows, np.int32), classes=[str(labels)]
        )
    return label_flows(traffic, labels, label_column)[0]


def encode(
    packets: Any,
    out: str | os.PathLike[str] | None = None,
    *,
    labels: str | None = None,
    label_column: str = "ndpi_proto",
    max_packets: int | None = None,
    keep_payload: bool = False,
    nprint: str | os.PathLike[str] | None = None,
) -> Traffic:
    """Flows of ``packets`` (Traffic, capture paths, Scapy packets or ``{class: packets}``),
    labelled, as ``netdiffusion encode`` makes them; written to the dataset ``out`` and the
    nPrint CSV ``nprint`` when given. ``labels``: ``"folder"`` or a flow CSV for captures, a
    class name for packets. Returns the flows."""
    traffic = _flows(packets, labels, label_column, keep_payload)
    if max_packets is not None:
        from netdiffusion.flows import cap_flows

        traffic = cap_flows(traffic, max_packets)[0]
    if out is not None:
        from netdiffusion.dataset import save_dataset

        save_dataset(traffic, out, store_payload=keep_payload)
    if nprint is not None:
        from netdiffusion.dataset import write_nprint_csv

        write_nprint_csv(traffic, nprint)
    return traffic


def train(
    packets: Any,
    *,
    out: str | os.PathLike[str],
    labels: str | None = None,
    label_column: str = "ndpi_proto",
    steps: int = 2000,
    max_packets: int = 32,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    config: dict[str, Any] | None = None,
    val_files: Sequence[str] | None = None,
    progress: bool = False,
    **options: Any,
) -> TrainResult:
    """Train a model on ``packets`` (as :func:`encode` takes them) and write the model directory
    ``out``; other keywords go to :func:`netdiffusion.model.train_model`. Raises ModelError."""
    from netdiffusion.model import ModelError, train_model

    traffic = _flows(packets, labels, label_column, False)
    if traffic.n_flows == 0:
        raise ModelError("no IPv4 TCP/UDP/ICMP flows to train on")
    return train_model(
        traffic, out, max_packets=max_packets, config=config, steps=steps,
        batch_size=batch_size, lr=lr, seed=seed, val_files=val_files, progress=progress,
        **options,
    )  # fmt: skip


def scapy_ext(plg: Any) -> None:
    """Scapy's extension loader (``conf.exts.load("netdiffusion")``) calls this on every
    top-level package of the distribution; the extension itself is ``netdiffusion_scapy``."""
