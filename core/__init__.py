"""netdiffusion: protocol-valid synthetic network traffic from a diffusion model.

Python API (importing ``netdiffusion`` is cheap: torch loads on first use)::

    import netdiffusion

    model = netdiffusion.load_model()  # the bundled model, or load_model("MODEL_DIR")
    traffic = model.generate(100, seed=1)
    flows = netdiffusion.encode(["captures/"], "data.safetensors", labels="folder")
    netdiffusion.train({"cam": rdpcap("cam.pcap"), "plug": plug_packets}, out="model/")

What ``train`` and ``encode`` learn from: a :class:`Traffic`, capture paths (files or
folders), foreign packets such as a Scapy ``PacketList`` (converted by a plugin's
``to_traffic`` hook; the core never imports Scapy), or a ``{class name: any of those}`` mapping.
"""

from __future__ import annotations

from typing import Any

from netdiffusion._traffic import Traffic
from netdiffusion.api import encode, scapy_ext, to_traffic, train

__all__ = ["Traffic", "__version__", "encode", "load_model", "scapy_ext", "to_traffic", "train"]
__version__ = "0.1.0"

_LAZY = {"load_model": "netdiffusion.model.sampling"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'netdiffusion' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(globals()))
