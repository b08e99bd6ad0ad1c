"""``scapy.modules.netdiffusion``: what ``load_module("netdiffusion")`` puts in a Scapy session
(registered by ``conf.exts.load("netdiffusion")``)."""

from netdiffusion_scapy import *  # noqa: F403
from netdiffusion_scapy import __all__  # noqa: F401
