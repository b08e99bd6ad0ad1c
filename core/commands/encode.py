"""``netdiffusion encode``: captures to a compact flow dataset (and nPrint CSV)."""

from __future__ import annotations

from pathlib import Path

import click

from netdiffusion.commands.options import label_options
from netdiffusion.dataset import save_dataset, write_nprint_csv
from netdiffusion.flows import cap_flows
from netdiffusion.inputs import read_flows
from netdiffusion.labels import label_counts


@click.command("encode")
@click.argument("captures", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Dataset file to write (safetensors with a JSON schema; .safetensors).",
)
@label_options
@click.option(
    "--max-packets",
    type=click.IntRange(min=1),
    default=None,
    help="Keep only the first N packets of each flow (the count truncated is reported).",
)
@click.option(
    "--nprint",
    "nprint_csv",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the packets as nPrint CSV (as `nprint -4 -t -u -i`).",
)
@click.option(
    "--keep-payload",
    is_flag=True,
    help="Store captured payload bytes too (off by default: headers, sizes and timing only).",
)
def encode_command(
    captures: tuple[Path, ...],
    output: Path,
    labels: str | None,
    label_column: str,
    max_packets: int | None,
    nprint_csv: Path | None,
    keep_payload: bool,
) -> None:
    """Encode CAPTURES (files or folders) into a flow dataset for training.

    Reads every IPv4 TCP/UDP/ICMP packet, assembles bidirectional flows, labels them and
    writes the packets' exact header bytes, timestamps, directions and flow labels. The model
    sees them as nPrint bits plus direction and inter-arrival time (`decode` turns a dataset
    back into a pcap).

    \b
    Examples:
      netdiffusion encode iot-sentinel/captures --labels folder -o iot.safetensors
      netdiffusion encode ndpi/pcap --labels ndpi/flows.csv --label-column category \
          -o ndpi.safetensors
      netdiffusion encode trace.pcap -o trace.safetensors --nprint trace.csv
    """
    traffic, summary, label_report = read_flows(
        captures, labels=labels, label_column=label_column, keep_payload=keep_payload,
        on_refused=_warn,
    )  # fmt: skip
    truncated = 0
    if max_packets is not None:
        traffic, truncated = cap_flows(traffic, max_packets)
    save_dataset(traffic, output, store_payload=keep_payload)
    if nprint_csv is not None:
        write_nprint_csv(traffic, nprint_csv)
    skipped = sum(summary.skipped.values())
    click.echo(
        f"{traffic.n_packets} packets in {traffic.n_flows} flows from {summary.files_read} files "
        f"written to {output} ({skipped} packets skipped"
        + (f", {truncated} flows truncated to {max_packets} packets" if max_packets else "")
        + ")"
    )
    if label_report is not None:
        classes = ", ".join(f"{k} {v}" for k, v in label_counts(traffic).items())
        click.echo(f"flows per class: {classes}")
    for w in summary.warnings:
        _warn(w)


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)
