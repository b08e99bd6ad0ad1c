"""Network interfaces as Linux describes them under ``/sys/class/net`` (no root needed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ARPHRD_ETHER", "ARPHRD_LOOPBACK", "Interface", "ReplayError", "interface_info"]

SYS_NET = Path("/sys/class/net")
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772


class ReplayError(Exception):
    """A replay that cannot run or failed; the message is one line naming the file or interface."""


@dataclass(frozen=True)
class Interface:
    """One network interface: name, MTU, ARPHRD type and whether it is up."""

    name: str
    mtu: int
    type: int
    up: bool

    @property
    def ethernet(self) -> bool:
        """True for Ethernet-framed interfaces (Ethernet, veth, bridges, bonds, VLANs)."""
        return self.type == ARPHRD_ETHER


def interface_info(name: str) -> Interface:
    """The interface ``name`` in this network namespace; :class:`ReplayError` when unknown."""
    if not name or "/" in name or name in (".", ".."):
        raise ReplayError(f"unknown interface {name!r}")
    base = SYS_NET / name
    if not base.is_dir():
        known = sorted(p.name for p in SYS_NET.iterdir()) if SYS_NET.is_dir() else []
        hint = f" (interfaces here: {', '.join(known)})" if known else ""
        raise ReplayError(f"unknown interface {name!r}{hint}")
    try:
        mtu = int((base / "mtu").read_text().strip())
        kind = int((base / "type").read_text().strip())
        flags = int((base / "flags").read_text().strip(), 16)
    except (OSError, ValueError) as exc:
        raise ReplayError(f"interface {name!r}: cannot read its settings ({exc})") from None
    return Interface(name=name, mtu=mtu, type=kind, up=bool(flags & 0x1))
