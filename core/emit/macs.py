"""Ethernet addresses for emitted frames: captured MACs are kept, missing ones derived from IPs.

A unicast IPv4 address ``a.b.c.d`` maps to the locally administered unicast MAC
``02:4e:a:b:c:d`` (first octet ``0x02``: locally administered bit set, group bit clear), so the
mapping is stable, one MAC per host, and never collides between two addresses. Destinations that
are not unicast get what a real stack sends to: ``ff:ff:ff:ff:ff:ff`` for the limited broadcast
``255.255.255.255`` and the IANA ``01:00:5e`` mapping of the low 23 bits for multicast
``224.0.0.0/4`` (RFC 1112).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from netdiffusion._traffic import Traffic

__all__ = ["LOCAL_MAC_PREFIX", "fill_macs", "frame_macs", "mac_for_ip"]

#: The two leading octets of every derived unicast MAC (locally administered, unicast).
LOCAL_MAC_PREFIX = (0x02, 0x4E)


def mac_for_ip(addr: NDArray[np.uint8], *, destination: bool = False) -> NDArray[np.uint8]:
    """MACs ``[N, 6]`` for IPv4 addresses given as ``[N, 4]`` bytes (network order).

    With ``destination=True``, broadcast and multicast addresses get their group MACs; otherwise
    every address gets its locally administered unicast MAC.
    """
    addr = np.asarray(addr, dtype=np.uint8).reshape(-1, 4)
    out = np.empty((len(addr), 6), np.uint8)
    out[:, 0], out[:, 1] = LOCAL_MAC_PREFIX
    out[:, 2:6] = addr
    if destination and len(addr):
        multicast = (addr[:, 0] & 0xF0) == 0xE0
        if multicast.any():
            out[multicast, 0:3] = (0x01, 0x00, 0x5E)
            out[multicast, 3] = addr[multicast, 1] & 0x7F
            out[multicast, 4:6] = addr[multicast, 2:4]
        out[(addr == 0xFF).all(axis=1)] = 0xFF
    return out


def frame_macs(traffic: Traffic) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """Destination + source MACs ``[N, 12]`` to write, and the mask of rows that were derived.

    A row of ``traffic.mac`` that is all zero (unknown) is derived from the packet's IP addresses;
    any other row is kept as captured.
    """
    mac = traffic.mac
    missing = ~mac.any(axis=1)
    if not missing.any():
        return mac, missing
    out = mac.copy()
    ip = traffic.ip[missing]
    out[missing, 0:6] = mac_for_ip(ip[:, 16:20], destination=True)
    out[missing, 6:12] = mac_for_ip(ip[:, 12:16])
    return out, missing


def fill_macs(traffic: Traffic) -> Traffic:
    """A copy whose unknown (all-zero) MAC rows are derived from the IP addresses."""
    mac, _ = frame_macs(traffic)
    return replace(traffic, mac=mac.copy() if mac is traffic.mac else mac)
