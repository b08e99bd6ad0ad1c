"""Labels from folder names and from a CSV of flows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netdiffusion import Traffic
from netdiffusion.flows import assemble_flows
from netdiffusion.labels import label_by_csv, label_by_folder, label_counts
from tests.packets import Pkt, make_traffic

C, S = "192.168.2.126", "161.117.13.29"


def _two_files() -> Traffic:
    a = make_traffic([Pkt(0.0, C, S, proto=17, sport=1, dport=53)], file="caps/Aria/x.pcap")
    b = make_traffic(
        [
            Pkt(0.0, C, S, sport=45380, dport=80, flags=0x02),
            Pkt(0.1, S, C, sport=80, dport=45380, flags=0x12),
            Pkt(0.2, C, S, proto=1, icmp_type=8, icmp_id=3),
        ],
        file="caps/HueBridge/y.pcap",
    )
    return assemble_flows(Traffic.concat([a, b]))


def test_label_by_folder_uses_parent_directory_names() -> None:
    t, report = label_by_folder(_two_files())
    assert t.classes == ["Aria", "HueBridge"]
    assert label_counts(t) == {"Aria": 1, "HueBridge": 2}
    assert report.labelled == 3 and report.unlabelled == 0


def test_label_by_csv_matches_endpoints_in_either_order(tmp_path: Path) -> None:
    csv = tmp_path / "flows.csv"
    csv.write_text(
        "pcap,l4,endpoint_a,endpoint_b,ndpi_proto,category\n"
        f"y.pcap,TCP,{S}:80,{C}:45380,HTTP.1kxun,Streaming\n"
        f"y.pcap,ICMP,{C}:0,{S}:0,ICMP,Network\n"
        "y.pcap,ICMPV6,[fe80::1]:0,[ff02::2]:0,ICMPV6,Network\n"
        f"other.pcap,UDP,{C}:1,{S}:53,DNS,Network\n"
    )
    t, report = label_by_csv(_two_files(), csv, "category")
    assert label_counts(t) == {"Streaming": 1, "Network": 1, "unlabelled": 1}
    assert report.unlabelled == 1 and report.rows_ignored == 1
    t2, _ = label_by_csv(_two_files(), csv, "ndpi_proto")
    assert sorted(t2.classes) == ["HTTP.1kxun", "ICMP"]


def test_label_by_csv_missing_column_is_a_one_line_error(tmp_path: Path) -> None:
    csv = tmp_path / "flows.csv"
    csv.write_text("pcap,endpoint_a,endpoint_b\n")
    with pytest.raises(ValueError, match="no column app") as err:
        label_by_csv(_two_files(), csv, "app")
    assert "\n" not in str(err.value)


def test_label_by_csv_on_real_ndpi_captures(shared_data: Path) -> None:
    from netdiffusion.capture import read_capture

    names = ["1kxun.pcap", "dns_long_domainname.pcap", "http_ipv4_ipv6.pcapng"]
    parts = [
        read_capture(shared_data / "ndpi" / "pcap" / n)[0]
        for n in names
        if (shared_data / "ndpi" / "pcap" / n).exists()
    ]
    t = assemble_flows(Traffic.concat(parts))
    labelled, report = label_by_csv(t, shared_data / "ndpi" / "flows.csv", "ndpi_proto")
    assert report.labelled + report.unlabelled == t.n_flows
    # nDPI lists (nearly) every IPv4 TCP/UDP/ICMP flow of its pcaps
    assert report.labelled >= 0.9 * t.n_flows
    assert np.all(labelled.flow_label < len(labelled.classes))
