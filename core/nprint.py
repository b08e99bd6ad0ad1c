"""nPrint's column layout for ``nprint -4 -t -u -i``: the per-packet bit vector we learn and export.

Facts checked against nPrint's own source (github.com/nprint/nprint, read through the code search
index; no code taken from it):

- ``src/packet/ipv4_header.cpp``, ``tcp_header.cpp``, ``udp_header.cpp``, ``icmp_header.cpp``
  (``get_bitstring_header``): the field names and widths below, each expanded to one column per
  bit named ``<field>_<i>`` with ``i`` from 0 (``src/packet/packet_header.cpp``,
  ``make_bitstring_header``). IPv4 and TCP headers are 60 bytes each
  (``SIZE_IPV4_HEADER_BITSTRING`` / ``SIZE_TCP_HEADER_BITSTRING`` = 60, so 320 option bits each);
  UDP and ICMP are 8 bytes (``SIZE_UDP_HEADER_BITSTRING`` / ``SIZE_ICMP_HEADER_BITSTRING`` = 8).
- ``src/packet/superpacket.cpp`` (``get_bitstring``) and ``src/io/file_writer.cpp``
  (``build_bitstring_header``): blocks in the order ethernet, IPv4, IPv6, TCP, UDP, ICMP, payload,
  each only when enabled; so ``-4 -t -u -i`` gives IPv4, TCP, UDP, ICMP = 480 + 480 + 64 + 64 =
  1088 bit columns.
- ``make_bitstring``: bits are written most significant first, byte by byte, as the header lies on
  the wire. A header the packet does not carry is written as ``fill_with`` for its whole width, and
  the bytes of the 60-byte IPv4/TCP blocks beyond ``IHL * 4`` / ``data offset * 4`` are written as
  ``fill_with`` too (``get_bitstring``: the header's own bytes, then ``fill_with`` for the rest).
  ``fill_with`` is -1 in nPrint's configuration (``src/conf.cpp``).
- ``src/io/pcap_parser.cpp`` (``format_and_write_header`` / ``packet_handler``) and
  ``include/conf.hpp`` (``index_map``): each row starts with an index column, by default
  ``src_ip`` (the dotted IPv4 source address), then ``rts`` with ``-R`` (microseconds since the
  previous packet written, 0 for the first), then the bits. ``file_writer.cpp``
  (``write_bitstring_line``): values as ``%d`` joined by ``,``, rows ended by ``\\n``.
- ``superpacket.cpp`` (``process_v4``): a packet whose IP protocol is not TCP, UDP or ICMP is not
  parseable and is not written. UDP and ICMP headers are always taken as 8 bytes.
"""

from __future__ import annotations

__all__ = [
    "BLOCKS",
    "FIELDS",
    "ICMP_BITS",
    "ICMP_SLICE",
    "INDEX_COLUMN",
    "IPV4_ADDR_SLICE",
    "IPV4_BITS",
    "IPV4_OPT_SLICE",
    "IPV4_SLICE",
    "N_BITS",
    "NPRINT_COMMAND",
    "RTS_COLUMN",
    "TCP_BITS",
    "TCP_OPT_SLICE",
    "TCP_SLICE",
    "UDP_BITS",
    "UDP_SLICE",
    "bit_columns",
    "csv_header",
    "field_slice",
]

#: The nPrint command line whose columns this module describes.
NPRINT_COMMAND = "nprint -4 -t -u -i"
#: First column of every nPrint row (nPrint's default index: the source IP address).
INDEX_COLUMN = "src_ip"
#: Column written after the index with ``-R`` (relative timestamps, microseconds).
RTS_COLUMN = "rts"

#: ``(block, [(field, width in bits), ...])`` in nPrint's order.
FIELDS: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = (
    (
        "ipv4",
        (
            ("ipv4_ver", 4),
            ("ipv4_hl", 4),
            ("ipv4_tos", 8),
            ("ipv4_tl", 16),
            ("ipv4_id", 16),
            ("ipv4_rbit", 1),
            ("ipv4_dfbit", 1),
            ("ipv4_mfbit", 1),
            ("ipv4_foff", 13),
            ("ipv4_ttl", 8),
            ("ipv4_proto", 8),
            ("ipv4_cksum", 16),
            ("ipv4_src", 32),
            ("ipv4_dst", 32),
            ("ipv4_opt", 320),
        ),
    ),
    (
        "tcp",
        (
            ("tcp_sprt", 16),
            ("tcp_dprt", 16),
            ("tcp_seq", 32),
            ("tcp_ackn", 32),
            ("tcp_doff", 4),
            ("tcp_res", 3),
            ("tcp_ns", 1),
            ("tcp_cwr", 1),
            ("tcp_ece", 1),
            ("tcp_urg", 1),
            ("tcp_ackf", 1),
            ("tcp_psh", 1),
            ("tcp_rst", 1),
            ("tcp_syn", 1),
            ("tcp_fin", 1),
            ("tcp_wsize", 16),
            ("tcp_cksum", 16),
            ("tcp_urp", 16),
            ("tcp_opt", 320),
        ),
    ),
    (
        "udp",
        (("udp_sport", 16), ("udp_dport", 16), ("udp_len", 16), ("udp_cksum", 16)),
    ),
    (
        "icmp",
        (("icmp_type", 8), ("icmp_code", 8), ("icmp_cksum", 16), ("icmp_roh", 32)),
    ),
)

IPV4_BITS = 480
TCP_BITS = 480
UDP_BITS = 64
ICMP_BITS = 64
N_BITS = IPV4_BITS + TCP_BITS + UDP_BITS + ICMP_BITS  # 1088

IPV4_SLICE = slice(0, IPV4_BITS)
TCP_SLICE = slice(IPV4_BITS, IPV4_BITS + TCP_BITS)
UDP_SLICE = slice(TCP_SLICE.stop, TCP_SLICE.stop + UDP_BITS)
ICMP_SLICE = slice(UDP_SLICE.stop, UDP_SLICE.stop + ICMP_BITS)
#: ``{block: slice of the bit vector}``.
BLOCKS: dict[str, slice] = {
    "ipv4": IPV4_SLICE,
    "tcp": TCP_SLICE,
    "udp": UDP_SLICE,
    "icmp": ICMP_SLICE,
}


def _field_offsets() -> dict[str, slice]:
    out: dict[str, slice] = {}
    pos = 0
    for _block, fields in FIELDS:
        for name, width in fields:
            out[name] = slice(pos, pos + width)
            pos += width
    assert pos == N_BITS
    return out


_FIELD_SLICES = _field_offsets()


def field_slice(name: str) -> slice:
    """Columns of the field ``name`` (e.g. ``"tcp_dprt"``) in the 1088-bit vector."""
    try:
        return _FIELD_SLICES[name]
    except KeyError:
        raise KeyError(f"no nPrint field {name!r}") from None


#: Both IPv4 addresses (``ipv4_src`` then ``ipv4_dst``).
IPV4_ADDR_SLICE = slice(_FIELD_SLICES["ipv4_src"].start, _FIELD_SLICES["ipv4_dst"].stop)
IPV4_OPT_SLICE = _FIELD_SLICES["ipv4_opt"]
TCP_OPT_SLICE = _FIELD_SLICES["tcp_opt"]


def bit_columns() -> list[str]:
    """The 1088 bit column names, in nPrint's order (``ipv4_ver_0`` ... ``icmp_roh_31``)."""
    return [f"{name}_{i}" for _b, fields in FIELDS for name, width in fields for i in range(width)]


def csv_header(*, relative_timestamps: bool = False) -> str:
    """nPrint's CSV header line (with its trailing newline)."""
    lead = [INDEX_COLUMN, RTS_COLUMN] if relative_timestamps else [INDEX_COLUMN]
    return ",".join([*lead, *bit_columns()]) + "\n"
