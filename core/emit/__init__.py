"""Emitters: addresses, MACs and payloads for generated traffic, and pcap / pcapng writers."""

from netdiffusion.emit._errors import EmitError
from netdiffusion.emit.addresses import assign_addresses
from netdiffusion.emit.macs import fill_macs, mac_for_ip
from netdiffusion.emit.payload import fill_payloads, payload_kinds
from netdiffusion.emit.pcap import PcapWriter, WriteReport, write_pcap, write_pcapng

__all__ = [
    "EmitError",
    "PcapWriter",
    "WriteReport",
    "assign_addresses",
    "fill_macs",
    "fill_payloads",
    "mac_for_ip",
    "payload_kinds",
    "write_pcap",
    "write_pcapng",
]
