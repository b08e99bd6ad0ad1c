"""netdiffusion's tcpreplay integration (import name ``netdiffusion_tcpreplay``).

What it will deliver (design brief, later issues):

- tcpreplay-ready emission: Ethernet (link type 1) pcaps with stable unicast MACs per host and
  frames within the MTU, which tcprewrite can convert;
- checks that a pcap is replayable, a ``tcpprep`` cache (client/server split) for
  ``tcpreplay --cachefile``, and a replay runner around ``tcpreplay``.

Registered with netdiffusion through the entry point ``tcpreplay = netdiffusion_tcpreplay.plugin``.
"""

__all__: list[str] = []
