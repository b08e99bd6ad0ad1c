"""Our conn.log against the logs Zeek 9.1 wrote for its own test traces (zeek-baselines/PAIRS.tsv).

One case per (pair, conn log). The mode comes from the pair's zeek command: ``-b`` (bare: no
default scripts, so only the likely server ports of the protocol scripts the test loads, and
``service`` is not compared), ``-C`` and ``ignore_checksums_nets``. Rows are matched by 5-tuple
(in order where one 5-tuple has several connections); every column the baseline has is compared
as text, except ``ts`` (masked in the baselines) and ``uid`` (random in Zeek).
"""

from __future__ import annotations

import csv
import re
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest

from netdiffusion.capture import read_capture
from netdiffusion_zeek import ConnLogWriter
from netdiffusion_zeek._log import CONN_FIELDS, tsv_lines
from tests.conftest import SHARED_DATA

BASE = SHARED_DATA / "zeek-baselines"

#: Likely server ports of the protocol scripts each bare (-b) test loads (its %INPUT).
BARE_PORTS = {
    "scripts.base.protocols.dhcp.dhcp-all-msg-types": frozenset({("udp", 67)}),
    "core.tcp.reassembly-known-ports": frozenset(("tcp", p) for p in (80, 81, 631, 1080, 3128)),
    "core.tcp.miss-end-data": frozenset(("tcp", p) for p in (80, 81, 631, 1080, 3128)),
    "scripts.base.protocols.pop3.basic": frozenset({("tcp", 110)}),
}
#: Traces Zeek reads through an analyzer we do not have: the derived equivalent (README).
TRACE_OVERRIDE = {"core.skip_analyzer": "derived/gre-sample-inner-rawip.pcap"}
KEY = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto")


def _cases() -> list[tuple[str, str, str, dict]]:
    pairs = BASE / "PAIRS.tsv"
    if not pairs.is_file():
        return []
    out = []
    with pairs.open(newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            logs = [f for f in row["baseline_files"].split(",") if f.startswith("conn")]
            seen: set[str] = set()
            for command in row["zeek_commands"].split(" ;; "):
                moved = re.search(r"mv conn\.log (\S+)", command)
                log = moved.group(1) if moved else "conn.log"
                if log not in logs or log in seen:
                    continue
                seen.add(log)
                nets = re.search(r"ignore_checksums_nets \+= \{([^}]*)\}", command)
                bare = " -b " in f" {command} "
                opts = {
                    "bare": bare,
                    "ignore_checksums": " -C " in f" {command} ",
                    "ignore_checksums_nets": tuple(
                        n.strip() for n in nets.group(1).split(",") if n.strip()
                    )
                    if nets
                    else (),
                }
                if bare and row["baseline_dir"] in BARE_PORTS:
                    opts["likely_server_ports"] = BARE_PORTS[row["baseline_dir"]]
                trace = TRACE_OVERRIDE.get(row["baseline_dir"], row["traces"])
                out.append((row["baseline_dir"], log, trace, opts))
    return out


CASES = _cases()


def _read_log(path: Path) -> list[dict[str, str]]:
    """Rows of a Zeek log as text (ASCII format, or zeek-cut output with a header line)."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("###")]
    fields: list[str] = []
    rows = []
    for line in lines:
        if line.startswith("#fields\t"):
            fields = line.split("\t")[1:]
        elif line.startswith("#"):
            continue
        elif not fields:
            fields = line.split("\t")  # zeek-cut output: a header line of field names
        else:
            rows.append(dict(zip(fields, line.split("\t"), strict=True)))
    return rows


def _ours(trace: str, opts: dict) -> list[dict[str, str]]:
    """Our conn.log of ``trace``, as the writer users get writes it (column-wise TSV), checked
    line for line against the row-wise formatter."""
    traffic, _ = read_capture(BASE / trace)
    with tempfile.TemporaryDirectory() as tmp:
        writer = ConnLogWriter(tmp, **opts)
        writer.add(traffic)
        rows = writer.rows()
        written = writer.close().read_text().splitlines()
    text = list(tsv_lines(rows, 0.0, 0.0))

    def no_uid(lines: list[str]) -> list[list[str]]:  # uids are drawn anew by each call
        return [line.split("\t")[:1] + line.split("\t")[2:] for line in lines]

    assert no_uid(written[8:-1]) == no_uid(text[8:-1]) and written[:5] == text[:5]
    return [dict(zip(CONN_FIELDS, line.split("\t"), strict=True)) for line in written[8:-1]]


def _compare(expected: list[dict[str, str]], ours: list[dict[str, str]], bare: bool) -> list[str]:
    columns = [c for c in expected[0] if c not in ("ts", "uid") and not (bare and c == "service")]
    problems = []
    if all(k in expected[0] for k in KEY):
        mine: dict[tuple, list] = defaultdict(list)
        for row in ours:
            mine[tuple(row[k] for k in KEY)].append(row)
        pairs = []
        for row in expected:
            got = mine[tuple(row[k] for k in KEY)]
            if not got:
                problems.append(f"missing {tuple(row[k] for k in KEY)}")
                continue
            pairs.append((row, got.pop(0)))
        extra = [key for key, rows in mine.items() for _ in rows]
        problems += [f"extra {key}" for key in extra]
    else:
        if len(expected) != len(ours):
            problems.append(f"{len(ours)} rows, expected {len(expected)}")
        pairs = list(zip(expected, ours, strict=False))
    for exp, got in pairs:
        for col in columns:
            if exp[col] != got[col]:
                problems.append(
                    f"{exp.get('id.orig_h')}:{exp.get('id.orig_p')} {col}: "
                    f"{got[col]!r} != zeek {exp[col]!r}"
                )
    return problems


def _is_v6(row: dict[str, str]) -> bool:
    return ":" in row.get("id.orig_h", "")


@pytest.mark.parametrize(
    ("baseline", "log", "trace", "opts"), CASES, ids=[f"{c[0]}/{c[1]}" for c in CASES]
)
def test_conn_log_equals_zeek(shared_data: Path, baseline: str, log: str, trace: str, opts: dict):
    expected = _read_log(BASE / "Baseline" / baseline / log)
    # IPv6 is out of scope (the reader skips it with a count): its rows are checked apart below.
    expected = [row for row in expected if not _is_v6(row)]
    assert expected, "a baseline with rows"
    problems = _compare(expected, _ours(trace, opts), opts["bare"])
    assert not problems, "\n".join(problems)


@pytest.mark.xfail(
    strict=True,
    reason="IPv6 is out of scope of netdiffusion's reader (skipped with a count): the 3 IPv6 "
    "rows of opt.basic (mDNS fe80::217:f2ff:fed7:cf65 -> ff02::fb, two LLMNR "
    "fe80::3074:17d5:2052:c324 -> ff02::1:3) are not produced",
)
def test_opt_basic_ipv6_rows(shared_data: Path) -> None:
    expected = [r for r in _read_log(BASE / "Baseline/opt.basic/conn.log") if _is_v6(r)]
    assert len(expected) == 3
    ours = _ours("Traces/wikipedia.pcap", {"bare": False})
    assert not _compare(expected, ours, bare=False)


def test_every_pair_with_a_conn_log_has_a_case(shared_data: Path) -> None:
    with (BASE / "PAIRS.tsv").open(newline="") as fh:
        dirs = {
            row["baseline_dir"]
            for row in csv.DictReader(fh, delimiter="\t")
            if any(f.startswith("conn") for f in row["baseline_files"].split(","))
        }
    assert dirs == {c[0] for c in CASES}
    assert len(CASES) == 13  # checksums_ignore_nets has two conn logs
