"""``netdiffusion repair``: fix a real capture's whole stack, like tcprewrite --fixcsum and more."""

from __future__ import annotations

from pathlib import Path

import click

from netdiffusion.commands.options import format_option, write_traffic
from netdiffusion.flows import assemble_flows
from netdiffusion.inputs import read_captures
from netdiffusion.repair import repair


@click.command("repair")
@click.argument("capture", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the repaired capture (written to a temporary name, then renamed).",
)
@format_option
def repair_command(capture: Path, output: Path, fmt: str | None) -> None:
    """Repair CAPTURE: checksums, lengths, options and TCP state, written as an Ethernet pcap.

    Valid fields are left alone: a clean capture comes out with identical IPv4 and L4 bytes.
    Defects are fixed and counted by kind. Packets that are not IPv4 TCP/UDP/ICMP are dropped
    (counted by reason); payload bytes missing from snapped captures are filled (see `decode
    --help`). MAC addresses are kept from Ethernet captures and made up for other link types.

    \b
    Example:
      netdiffusion repair damaged.pcap -o fixed.pcap
    """
    traffic, summary = read_captures([capture], strict=True, progress=False)
    for w in summary.warnings:
        click.echo(f"warning: {w}", err=True)
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(summary.skipped.items()) if v)
    if traffic.n_packets == 0:
        raise click.ClickException(
            f"{capture}: no IPv4 TCP/UDP/ICMP packets to repair"
            + (f" (skipped: {dropped})" if dropped else "")
        )
    traffic = assemble_flows(traffic)
    repaired, report = repair(traffic, synthetic=False)
    write_traffic(repaired, output, fmt, mtu=None)
    click.echo(
        f"{repaired.n_packets} packets written to {output}"
        + (f"; not IPv4 TCP/UDP/ICMP, dropped: {dropped}" if dropped else "")
    )
    for kind, count in sorted(report.fixed.items()):
        if count:
            click.echo(f"  fixed {count:>8}  {kind}")
