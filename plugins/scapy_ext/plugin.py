"""Hook implementations of the Scapy adapter (entry point ``scapy``).

:func:`to_traffic` lets the core accept Scapy packets (``netdiffusion.train(packets)``,
``netdiffusion.encode(packets)``) without ever importing Scapy: it answers only for Scapy
objects, recognised by their type's module, and imports Scapy only then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netdiffusion.hookspecs import hookimpl

if TYPE_CHECKING:
    from netdiffusion._traffic import Traffic

__all__ = ["to_traffic"]


@hookimpl
def to_traffic(obj: object) -> Traffic | None:
    """A Scapy packet, PacketList or list of packets as Traffic; None for anything else."""
    from ._convert import is_packets

    if not is_packets(obj):
        return None
    from ._convert import packets_to_traffic

    name = getattr(obj, "listname", None) or "<packets>"
    return packets_to_traffic(obj, name=str(name))[0]  # type: ignore[arg-type]
