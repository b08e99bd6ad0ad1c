"""``netdiffusion zeek``: Zeek's conn.log from captures, without Zeek (or with it)."""

from __future__ import annotations

import os
from pathlib import Path

import click
from tqdm import tqdm

from netdiffusion.cli import user_errors
from netdiffusion.inputs import expand_captures

from ._api import ZeekError, run_zeek, write_conn_logs

__all__ = ["zeek_command"]


@click.command("zeek")
@click.argument("captures", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to write conn.log into (created when missing).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines (LogAscii::use_json=T) not TSV.")
@click.option(
    "-C",
    "--ignore-checksums",
    is_flag=True,
    help="Like zeek -C: keep packets with bad checksums (offloaded captures).",
)
@click.option(
    "--ignore-checksums-net",
    "nets",
    multiple=True,
    metavar="NET",
    help="Like ignore_checksums_nets: skip checksum checks for sources in NET (a.b.c.d/len).",
)
@click.option(
    "-b",
    "--bare",
    is_flag=True,
    help="Like zeek -b: no default scripts, so no likely server ports (role flips).",
)
@click.option(
    "--engine",
    type=click.Choice(["ours", "zeek"]),
    default="ours",
    show_default=True,
    help="ours: netdiffusion's vectorized producer; zeek: run the zeek binary on PATH.",
)
@user_errors
def zeek_command(
    captures: tuple[Path, ...],
    out_dir: Path,
    as_json: bool,
    ignore_checksums: bool,
    nets: tuple[str, ...],
    bare: bool,
    engine: str,
) -> None:
    """Write Zeek's conn.log for CAPTURES into DIR, as Zeek itself would write it.

    CAPTURES are pcap or pcapng files (gzip-compressed too) or folders of them, read as one
    trace in the order given. The log follows Zeek's semantics: connections by 5-tuple with
    Zeek's timeouts, conn_state and history, sizes from TCP sequence numbers, missed bytes,
    service from payload signatures (dns, http, ssl, ssh, ftp, smtp, pop3, imap, ntp, dhcp).
    Only IPv4 TCP, UDP and ICMP packets are analysed.

    \b
    Examples:
      netdiffusion zeek trace.pcap -o logs/
      netdiffusion zeek captures/ -o logs/ --json
      netdiffusion zeek offloaded.pcapng -o logs/ -C
      netdiffusion zeek trace.pcap -o zeek-logs/ --engine zeek   # needs zeek on PATH

    Read the result with zat: LogToDataFrame().create_dataframe("logs/conn.log").
    """
    files = expand_captures(captures)
    if engine == "zeek":
        if len(files) != 1:
            raise ZeekError("--engine zeek takes exactly one capture file")
        path = run_zeek(
            files[0], out_dir, json=as_json, ignore_checksums=ignore_checksums, bare=bare
        )
        click.echo(f"wrote {path} (zeek)")
        return
    total = sum(os.stat(p).st_size for p in files)
    with tqdm(
        total=None, unit=" pkt", desc="conn.log", leave=False, disable=total < (16 << 20)
    ) as bar:
        path = write_conn_logs(
            files,
            out_dir,
            json=as_json,
            progress=bar.update,
            on_refused=(lambda msg: click.echo(f"warning: skipped {msg}", err=True))
            if len(files) > 1
            else None,
            ignore_checksums=ignore_checksums,
            ignore_checksums_nets=tuple(nets),
            bare=bare,
        )
    with path.open("rb") as fh:
        rows = sum(1 for line in fh if not line.startswith(b"#"))
    click.echo(f"wrote {path}: {rows} connections")
