"""Zeek's TSV and JSON formats, zat round trips, the Python API and ``netdiffusion zeek``."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from netdiffusion.cli import create_cli
from netdiffusion_zeek import CONN_FIELDS, CONN_TYPES, ConnLogWriter, conn_log
from netdiffusion_zeek._log import _tsv_value, escape

TRACE = "zeek-baselines/Traces/wikipedia.pcap"
STAMP = r"\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d"


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(create_cli(), list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def logs(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for kind in ("tsv", "json"):
        folder = tmp_path_factory.mktemp(kind)
        code, text = _run(
            "zeek",
            str(shared_data / TRACE),
            "-o",
            str(folder),
            *(["--json"] if kind == "json" else []),
        )
        assert code == 0, text
        assert "31 connections" in text
        out[kind] = folder / "conn.log"
    return out


def test_tsv_header_rows_and_close(logs: dict[str, Path]) -> None:
    lines = logs["tsv"].read_text().splitlines()
    assert lines[:5] == [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\tconn",
    ]
    assert re.fullmatch(rf"#open\t{STAMP}", lines[5])
    assert lines[6] == "#fields\t" + "\t".join(CONN_FIELDS)
    assert lines[7] == "#types\t" + "\t".join(CONN_TYPES)
    assert re.fullmatch(rf"#close\t{STAMP}", lines[-1])
    rows = [ln.split("\t") for ln in lines[8:-1]]
    assert len(rows) == 31 and all(len(r) == len(CONN_FIELDS) for r in rows)
    for r in rows:
        assert re.fullmatch(r"\d+\.\d{6}", r[0])
        assert r[8] == "-" or re.fullmatch(r"\d+\.\d{6}", r[8])
        assert r[12] in ("T", "F") and r[13] in ("T", "F")
        assert re.fullmatch(r"C[0-9A-Za-z]{17}", r[1])
    assert len({r[1] for r in rows}) == 31


def test_value_escapes() -> None:
    assert escape("a\tb") == "a\\x09b"
    assert escape("-") == "\\x2d"
    assert escape("") == "(empty)"
    assert escape("back\\slash") == "back\\x5cslash"
    assert escape("bell\x07") == "bell\\x07"
    assert escape("caf\u00e9") == "caf\u00e9"
    assert _tsv_value(None, "count") == "-"
    assert _tsv_value(True, "bool") == "T" and _tsv_value(False, "bool") == "F"
    assert _tsv_value([], "set[string]") == "(empty)"
    assert _tsv_value(["a,b", "c"], "set[string]") == "a\\x2cb,c"


def test_json_lines(logs: dict[str, Path]) -> None:
    objs = [json.loads(line) for line in logs["json"].read_text().splitlines()]
    assert len(objs) == 31
    for obj in objs:
        assert list(obj) == [f for f in CONN_FIELDS if f in obj]  # Zeek's field order
        assert "tunnel_parents" not in obj  # unset: left out
        assert isinstance(obj["ts"], float) and isinstance(obj["id.orig_p"], int)
        assert isinstance(obj["local_orig"], bool)
    single = [o for o in objs if o["orig_pkts"] + o["resp_pkts"] == 1]
    assert single and all("duration" not in o and "orig_bytes" not in o for o in single)
    assert any(o.get("service") == "http" for o in objs)


def test_zat_reads_tsv(shared_data: Path, logs: dict[str, Path]) -> None:
    from zat.log_to_dataframe import LogToDataFrame
    from zat.zeek_log_reader import ZeekLogReader

    from netdiffusion.capture import read_capture

    df = LogToDataFrame().create_dataframe(str(logs["tsv"]))
    assert len(df) == 31
    assert set(CONN_FIELDS) - {"ts"} <= set(df.columns)
    assert str(df["duration"].dtype).startswith("timedelta")
    packets = read_capture(shared_data / TRACE)[0].n_packets  # every checksum is right here
    assert int(df["orig_pkts"].sum()) + int(df["resp_pkts"].sum()) == packets
    rows = list(ZeekLogReader(str(logs["tsv"])).readrows())
    assert len(rows) == 31
    assert {r["uid"] for r in rows} == set(df["uid"])
    assert sorted(r["conn_state"] for r in rows) == sorted(df["conn_state"].astype(str))


def test_zat_reads_json(logs: dict[str, Path]) -> None:
    from zat.json_log_to_dataframe import JSONLogToDataFrame
    from zat.log_to_dataframe import LogToDataFrame

    js = JSONLogToDataFrame().create_dataframe(str(logs["json"]))
    tsv = LogToDataFrame().create_dataframe(str(logs["tsv"]))
    assert len(js) == len(tsv) == 31
    for col in ("orig_pkts", "resp_ip_bytes", "missed_bytes", "id.resp_p"):
        assert js[col].tolist() == tsv[col].astype(int).tolist()
    assert (js.index == tsv.index).all()  # same start times (microseconds)


def test_conn_log_api_and_writer(shared_data: Path, tmp_path: Path) -> None:
    from netdiffusion.capture import read_capture

    df = conn_log(shared_data / TRACE)
    zeek = (shared_data / "zeek-baselines/Baseline/opt.basic/conn.log").read_text().splitlines()
    v4 = [ln.split("\t") for ln in zeek if not ln.startswith("#") and "." in ln.split("\t")[2:3][0]]
    assert Counter(df["conn_state"].astype(str)) == Counter(r[11] for r in v4)
    traffic, _ = read_capture(shared_data / TRACE)
    with ConnLogWriter(tmp_path, json=True) as writer:
        half = traffic.n_packets // 2
        writer.add(traffic.take(list(range(half))))
        writer.add(traffic.take(list(range(half, traffic.n_packets))))
    lines = (tmp_path / "conn.log").read_text().splitlines()
    assert len(lines) == 31
    assert not list(tmp_path.glob(".conn.log.*"))  # atomic: no temporary left behind


def test_cli_errors_are_one_line(shared_data: Path, tmp_path: Path) -> None:
    code, text = _run("zeek", str(tmp_path / "missing.pcap"), "-o", str(tmp_path))
    assert code == 1 and text.strip().count("\n") == 0 and "missing.pcap" in text
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all" * 10)
    code, text = _run("zeek", str(junk), "-o", str(tmp_path / "out"))
    assert code == 1 and text.startswith("Error:") and "junk.pcap" in text
    code, text = _run(
        "zeek", str(shared_data / TRACE), "-o", str(tmp_path), "--ignore-checksums-net", "x"
    )
    assert code == 1 and text.strip().count("\n") == 0
    if shutil.which("zeek") is None:
        code, text = _run("zeek", str(shared_data / TRACE), "-o", str(tmp_path), "--engine", "zeek")
        assert code == 1 and "zeek" in text and text.strip().count("\n") == 0


def test_real_zeek_agrees_when_installed(shared_data: Path, tmp_path: Path) -> None:
    if shutil.which("zeek") is None:
        pytest.skip("zeek is not installed")
    from zat.log_to_dataframe import LogToDataFrame

    _run("zeek", str(shared_data / TRACE), "-o", str(tmp_path / "z"), "--engine", "zeek")
    _run("zeek", str(shared_data / TRACE), "-o", str(tmp_path / "o"))
    theirs = LogToDataFrame().create_dataframe(str(tmp_path / "z" / "conn.log"))
    ours = LogToDataFrame().create_dataframe(str(tmp_path / "o" / "conn.log"))
    theirs = theirs[~theirs["id.orig_h"].astype(str).str.contains(":")]  # IPv6: out of scope
    key = ["id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto"]
    cols = ["conn_state", "history", "orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes"]
    a = theirs.reset_index()[key + cols].astype(str).sort_values(key).reset_index(drop=True)
    b = ours.reset_index()[key + cols].astype(str).sort_values(key).reset_index(drop=True)
    assert a.equals(b)
