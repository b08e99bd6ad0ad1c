"""``netdiffusion generate ... --zeek DIR``: conn.log straight from the generated packets equals
the conn.log of the written capture (read back through zat)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

KEY = ["id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto"]


def _frame(path: Path):  # type: ignore[no-untyped-def]
    zat = pytest.importorskip("zat.log_to_dataframe")
    df = zat.LogToDataFrame().create_dataframe(str(path)).reset_index()
    return df.sort_values(KEY).reset_index(drop=True)


@pytest.mark.parametrize("flag", ["--zeek", "--zeek-json"])
def test_generate_zeek_equals_log_of_written_pcap(tmp_path: Path, flag: str) -> None:
    out, logs = tmp_path / "gen.pcap", tmp_path / "logs"
    cmd = [sys.executable, "-m", "netdiffusion", "generate", "--flows", "60", "--seed", "4",
           flag, str(logs), "-o", str(out)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Zeek conn.log with" in res.stdout
    again = tmp_path / "again"
    res = subprocess.run([sys.executable, "-m", "netdiffusion", "zeek", str(out), "-o", str(again)]
                         + (["--json"] if flag == "--zeek-json" else []),
                         capture_output=True, text=True, timeout=180)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    if flag == "--zeek-json":
        first = (logs / "conn.log").read_text().splitlines()[0]
        assert first.startswith("{") and '"id.orig_h"' in first
        return
    direct, via_pcap = _frame(logs / "conn.log"), _frame(again / "conn.log")
    assert len(direct) == len(via_pcap) >= 60
    for col in direct.columns:
        if col in ("uid", "ts", "duration"):
            continue
        assert direct[col].astype(str).tolist() == via_pcap[col].astype(str).tolist(), col
    # the pcap keeps microseconds; the direct log saw nanoseconds
    d = direct["duration"].dt.total_seconds().fillna(0).to_numpy()
    v = via_pcap["duration"].dt.total_seconds().fillna(0).to_numpy()
    assert np.abs(d - v).max() <= 2e-6
