"""``netdiffusion decode``: a flow dataset back to a pcap, with or without repair."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from netdiffusion.commands.options import address_options, format_option, write_traffic
from netdiffusion.dataset import load_dataset


@click.command("decode")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Capture to write (.pcap or .pcapng).",
)
@click.option(
    "--repair/--no-repair",
    default=True,
    show_default=True,
    help="Run the repair engine (checksums, lengths, TCP state) before writing. "
    "--no-repair writes the stored header bytes exactly as they are.",
)
@format_option
@address_options
def decode_command(
    dataset: Path,
    output: Path,
    repair: bool,
    fmt: str | None,
    client_net: str,
    server_net: str,
    seed: int,
) -> None:
    """Decode DATASET (from `encode`) into a capture.

    Header bytes and timestamps come back exactly. Payload bytes are not stored in a dataset
    (unless encoded with --keep-payload): they are filled to each packet's length with
    protocol templates (DNS, HTTP, TLS records, NTP, ...; see the netdiffusion.emit.payload
    docs) so that Wireshark dissects them cleanly. IP addresses masked in the dataset are
    assigned from --client-net / --server-net.

    \b
    Examples:
      netdiffusion decode iot.safetensors -o iot.pcap
      netdiffusion decode iot.safetensors -o exact-headers.pcap --no-repair
    """
    from netdiffusion.emit import assign_addresses, fill_payloads

    traffic = load_dataset(dataset)
    if traffic.n_packets and not np.any(traffic.ip[:, 12:20]):
        traffic = assign_addresses(traffic, client_net=client_net, server_net=server_net, seed=seed)
    if repair:
        from netdiffusion.repair import repair as run_repair

        traffic, _ = run_repair(traffic, synthetic=False, seed=seed)
    else:
        traffic = fill_payloads(traffic)  # stored (capture) order, headers exactly as stored
    write_traffic(traffic, output, fmt, mtu=None)
    click.echo(f"{traffic.n_packets} packets in {traffic.n_flows} flows written to {output}")
