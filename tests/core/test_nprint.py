"""nPrint column layout: names, order, widths and the CSV header."""

from __future__ import annotations

from netdiffusion import nprint


def test_1088_unique_columns_in_nprint_block_order() -> None:
    cols = nprint.bit_columns()
    assert len(cols) == nprint.N_BITS == 1088
    assert len(set(cols)) == len(cols)
    assert cols[0] == "ipv4_ver_0"
    assert cols[479] == "ipv4_opt_319"
    assert cols[480] == "tcp_sprt_0"
    assert cols[959] == "tcp_opt_319"
    assert cols[960] == "udp_sport_0"
    assert cols[1023] == "udp_cksum_15"
    assert cols[1024] == "icmp_type_0"
    assert cols[-1] == "icmp_roh_31"
    blocks = [c.split("_")[0] for c in cols]
    assert blocks == ["ipv4"] * 480 + ["tcp"] * 480 + ["udp"] * 64 + ["icmp"] * 64


def test_field_slices_match_wire_offsets() -> None:
    # bit offset on the wire = byte offset * 8 within each header
    assert nprint.field_slice("ipv4_ttl") == slice(64, 72)
    assert nprint.field_slice("ipv4_proto") == slice(72, 80)
    assert nprint.field_slice("ipv4_src") == slice(96, 128)
    assert nprint.field_slice("ipv4_opt") == slice(160, 480)
    assert nprint.field_slice("tcp_doff") == slice(480 + 96, 480 + 100)
    assert nprint.field_slice("tcp_syn") == slice(480 + 110, 480 + 111)
    assert nprint.field_slice("tcp_opt") == slice(480 + 160, 960)
    assert nprint.field_slice("udp_len") == slice(960 + 32, 960 + 48)
    assert nprint.field_slice("icmp_roh") == slice(1024 + 32, 1088)
    assert slice(96, 160) == nprint.IPV4_ADDR_SLICE
    for block, sl in nprint.BLOCKS.items():
        widths = sum(w for b, fields in nprint.FIELDS if b == block for _n, w in fields)
        assert sl.stop - sl.start == widths


def test_unknown_field_is_a_key_error() -> None:
    try:
        nprint.field_slice("ipv6_src")
    except KeyError as exc:
        assert "ipv6_src" in str(exc)
    else:
        raise AssertionError("expected KeyError")


def test_csv_header() -> None:
    head = nprint.csv_header()
    assert head.endswith("\n") and head.count("\n") == 1
    names = head.rstrip("\n").split(",")
    assert names[0] == "src_ip" and names[1:] == nprint.bit_columns()
    names_r = nprint.csv_header(relative_timestamps=True).rstrip("\n").split(",")
    assert names_r[:3] == ["src_ip", "rts", "ipv4_ver_0"] and len(names_r) == 1090
