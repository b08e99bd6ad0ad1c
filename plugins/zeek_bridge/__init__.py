"""netdiffusion's Zeek log producer (import name ``netdiffusion_zeek``).

What it will deliver (design brief, later issues):

- Zeek logs from synthetic (or real) traffic: ``conn.log`` in Zeek's own TSV format and in its
  JSON format, readable by ``zat``, with Zeek's ``conn_state`` and ``history`` semantics;
- running the real ``zeek`` on the emitted pcap when it is installed, and checks comparing our
  conn.log with Zeek's own on real traces (every compared column equal).

Registered with netdiffusion through the entry point ``zeek = netdiffusion_zeek.plugin``.
"""

__all__: list[str] = []
