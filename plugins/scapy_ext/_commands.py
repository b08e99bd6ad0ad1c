"""Interactive Scapy commands, listed by ``lsc()``: synth, synth_classes, synth_socket."""

from __future__ import annotations

from typing import Any

from scapy.config import conf
from scapy.plist import PacketList

from ._socket import Classes, ModelArg, SynthSocket, get_model

__all__ = ["synth", "synth_classes", "synth_socket"]


def _listname(cls: Classes) -> str:
    """The PacketList name for a class request: the class, classes joined by '+', or 'synth'."""
    if cls is None:
        return "synth"
    if isinstance(cls, str):
        return cls
    return "+".join(str(c) for c in cls)


@conf.commands.register
def synth(
    count: int = 100,
    cls: Classes = None,
    model: ModelArg = None,
    seed: int = 0,
    **kwargs: Any,
) -> PacketList:
    """Generate COUNT packets of synthetic traffic (netdiffusion) as a PacketList

    ``cls``: class name, list of names or {name: share} (default: every class of the model);
    ``model``: model directory (default: the bundled model); ``seed``: same seed, same packets.
    Other keywords (steps, guidance, flows, nanosecond, device, ...) go to SynthSocket. The
    packets are the first COUNT that ``netdiffusion generate --packets COUNT`` writes.
    """
    with SynthSocket(model=model, cls=cls, count=count, seed=seed, **kwargs) as sock:
        return PacketList(list(sock), name=_listname(cls))


@conf.commands.register
def synth_socket(
    cls: Classes = None, model: ModelArg = None, seed: int = 0, **kwargs: Any
) -> SynthSocket:
    """Open a read-only socket of synthetic traffic, for sniff(opened_socket=...)

    Same arguments as SynthSocket (count=, flows=, steps=, ...).
    """
    return SynthSocket(model=model, cls=cls, seed=seed, **kwargs)


@conf.commands.register
def synth_classes(model: ModelArg = None) -> dict[str, float]:
    """Traffic classes of a netdiffusion model and their training shares

    ``model``: model directory (default: the bundled model).
    """
    return dict(get_model(model).class_proportions)
