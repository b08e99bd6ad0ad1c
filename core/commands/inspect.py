"""``netdiffusion inspect``: what captures hold."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from netdiffusion._traffic import PROTO_ICMP, PROTO_TCP, PROTO_UDP
from netdiffusion.commands.options import label_options
from netdiffusion.inputs import read_flows
from netdiffusion.labels import label_counts

_PROTO_NAMES = {PROTO_TCP: "tcp", PROTO_UDP: "udp", PROTO_ICMP: "icmp"}


@click.command("inspect")
@click.argument("captures", nargs=-1, required=True, type=click.Path(path_type=Path))
@label_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def inspect_command(
    captures: tuple[Path, ...], labels: str | None, label_column: str, as_json: bool
) -> None:
    """Show what CAPTURES hold: packets, flows, classes, and what was skipped and why.

    CAPTURES are pcap or pcapng files (gzip-compressed too) or folders of them. Only IPv4
    TCP/UDP/ICMP packets are kept; everything else is counted by reason.

    \b
    Examples:
      netdiffusion inspect trace.pcapng
      netdiffusion inspect captures/ --labels folder
      netdiffusion inspect pcaps/ --labels flows.csv --label-column category --json
    """
    traffic, summary, label_report = read_flows(
        captures, labels=labels, label_column=label_column, on_refused=_warn
    )
    first = np.unique(traffic.flow, return_index=True)[1] if traffic.n_packets else np.zeros(0, int)
    flow_proto = traffic.proto[first]
    ts = traffic.ts_ns
    info = {
        "files": summary.files_read,
        "files_refused": len(summary.refused),
        "packets": summary.packets_seen,
        "packets_kept": summary.packets_kept,
        "packets_skipped": dict(sorted(summary.skipped.items())),
        "link_types": dict(summary.link_types),
        "flows": traffic.n_flows,
        "flows_by_protocol": {
            name: int(np.count_nonzero(flow_proto == p)) for p, name in _PROTO_NAMES.items()
        },
        "bytes_ip": int((traffic.ihl_bytes + traffic.l4_hdr_len + traffic.payload_len).sum()),
        "first_ts": float(ts.min()) / 1e9 if len(ts) else None,
        "last_ts": float(ts.max()) / 1e9 if len(ts) else None,
        "classes": label_counts(traffic) if labels else {},
        "warnings": summary.warnings,
    }
    if label_report is not None:
        info["unlabelled_flows"] = label_report.unlabelled
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(
        f"files        {info['files']}"
        + (f" ({len(summary.refused)} refused)" if summary.refused else "")
    )
    click.echo(
        f"packets      {info['packets']} seen, {info['packets_kept']} kept (IPv4 TCP/UDP/ICMP)"
    )
    for reason, count in info["packets_skipped"].items():
        click.echo(f"  skipped    {count:>8}  {reason}")
    by_proto = ", ".join(f"{v} {k}" for k, v in info["flows_by_protocol"].items())
    click.echo(f"flows        {info['flows']} ({by_proto})")
    if info["first_ts"] is not None:
        span = info["last_ts"] - info["first_ts"]
        click.echo(f"time span    {span:.6f} s")
    for name, count in info["classes"].items():
        click.echo(f"  class      {count:>8}  {name}")
    for w in summary.warnings:
        click.echo(f"warning: {w}", err=True)


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)
