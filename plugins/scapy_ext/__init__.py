"""netdiffusion's Scapy adapter (import name ``netdiffusion_scapy``).

Generated traffic as Scapy packets, and Scapy packets as training data:

- :class:`SynthSocket`: a read-only socket (in the manner of Scapy's ``IterSocket``) streaming
  generated traffic, for ``sniff(opened_socket=...)`` and ``sock.sniff(...)``;
- :func:`synth`: ``count`` generated packets as a ``PacketList`` named after the class;
  :func:`synth_socket`, :func:`synth_classes`; all three are Scapy commands (``lsc()``);
- :class:`SynthSource`: the same stream as a PipeEngine source;
- :func:`to_traffic` / :func:`packets_to_traffic`: a ``PacketList`` (or anything ``rdpcap``
  returns) to :class:`netdiffusion.Traffic`, which ``netdiffusion.train`` and
  ``netdiffusion.encode`` accept directly.

Load it in Scapy with ``conf.exts.load("netdiffusion")`` (or ``load_module("netdiffusion")``
after it, or ``from netdiffusion_scapy import *``). Importing this package imports neither Scapy
nor torch: the names above load on first use, so the netdiffusion CLI, which loads the plugin
``scapy = netdiffusion_scapy.plugin``, stays fast.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

__all__ = [
    "ConversionError",
    "SynthSocket",
    "SynthSource",
    "packets_to_traffic",
    "synth",
    "synth_classes",
    "synth_socket",
    "to_traffic",
]

_LAZY = {
    "ConversionError": "._convert",
    "packets_to_traffic": "._convert",
    "to_traffic": "._convert",
    "SynthSocket": "._socket",
    "synth": "._commands",
    "synth_classes": "._commands",
    "synth_socket": "._commands",
    "SynthSource": "._pipe",
}

#: Name of the Scapy module this extension registers (``scapy.modules.netdiffusion``).
SCAPY_MODULE = "netdiffusion"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'netdiffusion_scapy' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "scapy_ext"])


def scapy_ext(plg: Any) -> None:
    """Scapy's extension entry (called by ``conf.exts.load("netdiffusion")``).

    Registers the module ``scapy.modules.netdiffusion`` (for ``load_module``), registers the
    commands (``lsc()`` lists them) and, as ``load_module`` does, makes the public names
    available in the session.
    """
    import builtins

    from netdiffusion import __version__

    plg.config("netdiffusion", __version__)
    plg.register(
        name=SCAPY_MODULE,
        mode=plg.MODE.MODULES,
        path=Path(__file__).resolve().parent / "_module.py",
        default=False,
    )
    for name in __all__:  # imports the commands, which registers them with conf.commands
        builtins.__dict__[name] = __getattr__(name)
