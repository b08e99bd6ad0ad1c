"""A real interactive Scapy session, driven through a pseudo-terminal with pexpect.

Scapy's console starts (IPython when installed, and the plain Python console), loads the
extension with ``conf.exts.load("netdiffusion")``, sniffs 50 packets from a ``SynthSocket`` and
writes them with ``wrpcap``. The file must hold, record by record, what
``netdiffusion generate --flows 20 --packets 50 --seed 5`` writes: the same bytes and the same
timestamps. They must agree because both ask the model for the same run (same flow plan:
flows, seed, all classes, batch size; same device) and take its first 50 classic-pcap records
(:meth:`TrafficModel.generate_records`); the socket dissects each packet from its record's
frame bytes and sets ``.time`` from its record header, so Scapy writes back the same
seconds and microseconds and, the packet being untouched, the same bytes.
"""

from __future__ import annotations

import importlib.util
import os
import struct
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

pexpect = pytest.importorskip("pexpect")

MARK = "ND-"  # printed as "ND-" + "WORD", so the echoed command never matches the answer


def _records(path: Path) -> tuple[int, list[tuple[int, int, int, bytes]]]:
    """Link type and ``(seconds, microseconds, original length, frame)`` of a classic
    microsecond pcap, read with struct alone (no reader under test)."""
    data = path.read_bytes()
    magic, _maj, _min, _zone, _sig, _snap, linktype = struct.unpack_from("<IHHiIII", data, 0)
    assert magic == 0xA1B2C3D4, f"{path}: not a little-endian microsecond pcap"
    out, at = [], 24
    while at < len(data):
        sec, usec, cap, wire = struct.unpack_from("<IIII", data, at)
        out.append((sec, usec, wire, data[at + 16 : at + 16 + cap]))
        at += 16 + cap
    return linktype, out


def _session(shell: str, home: Path, out: Path) -> None:
    """Run Scapy's console in ``shell`` mode and sniff + wrpcap 50 packets into ``out``.

    The IPython session loads the extension from prestart.py (the README's snippet), the plain
    one with ``conf.exts.load`` typed in the session."""
    config = home / ".config" / "scapy"
    config.mkdir(parents=True)
    prestart = f'conf.interactive_shell = "{shell}"\nconf.fancy_banner = False\n'
    if shell == "ipython":
        prestart += 'conf.load_extensions.append("netdiffusion")\n'
    (config / "prestart.py").write_text(prestart)
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "TERM": "dumb",
        "PROMPT_TOOLKIT_NO_CPR": "1",
    }
    child = pexpect.spawn(
        sys.executable, ["-m", "scapy"], env=env, encoding="utf-8", timeout=90,
        dimensions=(50, 250), cwd=str(home),
    )  # fmt: skip
    child.logfile_read = (home / "session.log").open("w")
    try:

        def run(command: str, word: str, show: str = "") -> str:
            child.sendline(f'{command}; print("{MARK}" + "{word}"{show})')
            i = child.expect([f"{MARK}{word}(.*)\r?\n", "Traceback", pexpect.EOF, pexpect.TIMEOUT])
            if i != 0:
                log = (home / "session.log").read_text(errors="replace")
                if word == "READY":
                    pytest.skip(f"Scapy's {shell} console did not start: {log[-500:]}")
                pytest.fail(f"{command!r} failed in the {shell} console:\n{log[-3000:]}")
            return str(child.match.group(1))

        run("pass", "READY")
        if shell == "ipython":
            run('assert "netdiffusion" in repr(conf.exts) and callable(synth)', "LOADED")
        else:
            run('conf.exts.load("netdiffusion")', "LOADED")
        sock = 'SynthSocket(flows=20, seed=5, device="cpu")'
        got = run(
            f'pl = sniff(opened_socket={sock}, count=50); wrpcap("{out}", pl)', "DONE", ", len(pl)"
        )
        assert got.strip() == "50" and out.is_file()
        child.sendline("exit()")
        child.expect(pexpect.EOF, timeout=30)
    finally:
        child.close(force=True)


@pytest.mark.parametrize("shell", ["python", "ipython"])
def test_interactive_session_writes_what_generate_writes(shell: str, tmp_path: Path) -> None:
    if shell == "ipython" and importlib.util.find_spec("IPython") is None:
        pytest.skip("IPython is not installed (Scapy falls back to the plain console)")
    from netdiffusion.cli import create_cli

    sniffed = tmp_path / "session.pcap"
    _session(shell, tmp_path / "home", sniffed)
    generated = tmp_path / "generated.pcap"
    res = CliRunner().invoke(
        create_cli(load_entrypoints=False),
        ["generate", "--flows", "20", "--packets", "50", "--seed", "5", "--device", "cpu",
         "-o", str(generated)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    lt_s, rec_s = _records(sniffed)
    lt_g, rec_g = _records(generated)
    assert lt_s == lt_g == 1
    assert len(rec_s) == len(rec_g) == 50
    for i, (a, b) in enumerate(zip(rec_s, rec_g, strict=True)):
        assert a == b, f"record {i} differs"
