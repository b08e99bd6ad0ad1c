"""``netdiffusion check`` and ``netdiffusion replay`` (registered by the tcpreplay plugin)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from netdiffusion.cli import user_errors

from ._cache import DEFAULT_CLIENT_NET, ROLES
from ._check import check_capture
from ._iface import interface_info
from ._replay import ReplayResult, replay, replay_to_file

__all__ = ["check_command", "replay_command"]


@click.command("check")
@click.argument("pcap", type=click.Path(path_type=Path))
@click.option("--mtu", type=click.IntRange(68, 65535), help="Check frames against this MTU.")
@click.option("-i", "--iface", "iface", metavar="IFACE", help="Check against this interface's MTU.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@user_errors
def check_command(pcap: Path, mtu: int | None, iface: str | None, as_json: bool) -> None:
    """Check that PCAP will replay cleanly with tcpreplay; exit status 1 when it will not.

    One line per kind of problem with its count: link type not Ethernet, frames above the
    snaplen or cut short of their length, frames above the MTU (1500 unless --mtu or -i),
    timestamps going backwards, wrong IPv4/TCP/UDP/ICMP checksums, inconsistent lengths,
    compressed or damaged files.

    \b
    Examples:
      netdiffusion check traffic.pcap
      netdiffusion check traffic.pcap -i eth0 --json
    """
    if mtu is not None and iface is not None:
        raise click.UsageError("give --mtu or -i, not both")
    source = None
    if iface is not None:
        mtu, source = interface_info(iface).mtu, iface
    report = check_capture(pcap, mtu=mtu, mtu_source=source)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for line in report.lines():
            click.echo(line)
    if not report.ok:
        raise SystemExit(1)


def _print(result: ReplayResult, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        for line in result.lines():
            click.echo(line)


@click.command("replay")
@click.argument("pcap", type=click.Path(path_type=Path))
@click.option("-i", "--iface", metavar="IFACE", help="Send (client to server) out of IFACE.")
@click.option("-I", "--iface2", metavar="IFACE2", help="Send server to client out of IFACE2.")
@click.option(
    "-w",
    "--write",
    "write",
    type=click.Path(path_type=Path),
    help="Write what tcpreplay sends to this pcap instead (no root needed).",
)
@click.option("--pps", type=float, help="Packets per second.")
@click.option("--mbps", type=float, help="Megabits per second.")
@click.option("--topspeed", is_flag=True, help="As fast as possible.")
@click.option("--multiplier", type=float, help="The capture's own timing, sped up X times.")
@click.option("--loop", type=click.IntRange(1), default=1, show_default=True, help="Times.")
@click.option(
    "--cache", type=click.Path(path_type=Path), help="A tcpprep cache for -I (default: built)."
)
@click.option(
    "--roles",
    type=click.Choice(ROLES),
    default="flows",
    show_default=True,
    help="How the cache tells client from server: flow originators (ours), --client-net, "
    "or tcpprep's own auto/port modes (foreign captures).",
)
@click.option(
    "--client-net", default=DEFAULT_CLIENT_NET, show_default=True, help="For --roles client-net."
)
@click.option("--dry-run", is_flag=True, help="Check and show the command; send nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@user_errors
def replay_command(
    pcap: Path,
    iface: str | None,
    iface2: str | None,
    write: Path | None,
    pps: float | None,
    mbps: float | None,
    topspeed: bool,
    multiplier: float | None,
    loop: int,
    cache: Path | None,
    roles: str,
    client_net: str,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Replay PCAP with tcpreplay after checking it against the interface(s).

    Without a rate option the capture's own timing is kept. With -I, client-to-server packets
    leave IFACE and server-to-client packets IFACE2, split by a tcpprep cache built from the
    flows' originators (or --cache). Sending needs root (or tcpreplay with CAP_NET_RAW); -w
    writes what would be sent to a file instead, without root.

    \b
    Examples:
      netdiffusion replay traffic.pcap -i eth0 --pps 1000
      netdiffusion replay traffic.pcap -i eth0 -I eth1 --topspeed --json
      netdiffusion replay traffic.pcap -w sent.pcap --topspeed
    """
    rate = {"pps": pps, "mbps": mbps, "topspeed": topspeed, "multiplier": multiplier}
    if write is not None:
        if iface or iface2 or cache:
            raise click.UsageError("-w writes a file: give no -i, -I or --cache with it")
        result = replay_to_file(pcap, write, loop=loop, dry_run=dry_run, **rate)
    else:
        if not iface:
            raise click.UsageError("give -i IFACE (or -w FILE)")
        if cache is not None and iface2 is None:
            raise click.UsageError("--cache needs -I IFACE2")
        result = replay(
            pcap,
            iface,
            iface2,
            loop=loop,
            cache=cache,
            dry_run=dry_run,
            roles=roles,
            client_net=client_net,
            **rate,
        )
    _print(result, as_json)
