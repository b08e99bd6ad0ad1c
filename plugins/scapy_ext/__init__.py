"""netdiffusion's Scapy adapter (import name ``netdiffusion_scapy``).

What it will deliver (design brief, later issues):

- synthetic traffic as Scapy packets in an interactive Scapy session: a ``PacketList`` with
  ``.time`` set on every packet, and a packet source usable with ``sniff()`` (a SuperSocket in
  the manner of Scapy's ``IterSocket``);
- interactive commands registered with ``@conf.commands.register``;
- a Scapy extension loadable with ``conf.exts`` (the distribution is GPL-2.0-or-later, which
  Scapy's extension loader accepts).

Scapy objects are built only here, at the edge, on demand: the core never imports Scapy.
Registered with netdiffusion through the entry point ``scapy = netdiffusion_scapy.plugin``.
"""

__all__: list[str] = []
