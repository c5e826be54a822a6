"""`hostclock replay`: output file, --json, --expect and its exit status, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.app.cli import main

REPO = Path(__file__).resolve().parents[3]
PCAPS = REPO / "pcaps"
CLOCK = "fixed:2024-01-01T00:00:00Z"
MODES = str(PCAPS / "hostile" / "ntp_modes.pcap")
MODES_GOLDEN = str(PCAPS / "golden" / "hostile" / "ntp_modes.pcap.out.pcap")


def test_out_is_the_golden_output_and_the_summary_is_printed(tmp_path, capsys):
    out = tmp_path / "out.pcap"
    assert main(["replay", MODES, "--clock", CLOCK, "--out", str(out)]) == 0
    assert out.read_bytes() == Path(MODES_GOLDEN).read_bytes()
    text = capsys.readouterr().out
    assert "frames read            8" in text and "1 x ntp: mode 7 (only client requests, mode 3, are forwarded)" in text


def test_json_is_one_object_with_the_exchanges(capsys):
    assert main(["replay", MODES, "--clock", CLOCK, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames_answered"] == 1 and report["clock"] == "fixed:2024-01-01T00:00:00.000000000Z"
    (exchange,) = report["exchanges"]
    assert exchange["request_frame"] == 4 and exchange["t1_source"] == "client transmit timestamp"


def test_expect_identical_exits_0(capsys):
    assert main(["replay", MODES, "--clock", CLOCK, "--expect", MODES_GOLDEN]) == 0
    assert f"expected output {MODES_GOLDEN}: identical" in capsys.readouterr().out


def test_expect_different_exits_1_with_a_field_diff(capsys):
    assert main(["replay", MODES, "--clock", "fixed:2024-01-01T00:00:01Z", "--expect", MODES_GOLDEN]) == 1
    out = capsys.readouterr().out
    assert "DIFFERENT" in out
    assert "frame 1: timestamp: expected 1704067200.003010000, written 1704067201.003010000 (+1000000000 ns)" in out
    assert "frame 1: NTPHeader.recv: expected" in out


def test_expect_in_json(capsys):
    assert main(["replay", MODES, "--json", "--expect", MODES_GOLDEN]) == 1  # recorded clock: other times
    expect = json.loads(capsys.readouterr().out)["expect"]
    assert expect["identical"] is False and expect["differences"]


def test_expect_a_microsecond_file_with_the_same_frames(tmp_path, capsys):
    """Same frames, other file format: the files differ, and the message says it is the format."""
    from scapy.utils import PcapWriter

    from gateway.edges.pcap_reader import open_capture

    micro = tmp_path / "micro.pcap"
    records = list(open_capture(str(PCAPS / "golden" / "hostile" / "ntp_modes.pcap.out.pcap")).records())
    with PcapWriter(str(micro), linktype=1, sync=True) as writer:
        writer.write_header(None)
        for r in records:
            writer.write_packet(r.data, sec=r.ts_ns // 10**9, usec=r.ts_ns % 10**9 // 1000)
    assert main(["replay", MODES, "--clock", CLOCK, "--expect", str(micro)]) == 1
    assert "same frames and timestamps, but the files differ: expected a pcap (microsecond) file" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["replay", "/nonexistent/in.pcap"], "hostclock: error: cannot read /nonexistent/in.pcap: No such file or directory"),
    (["replay", str(PCAPS / "README.md")], "is not a pcap or pcapng capture"),
    (["replay", MODES, "--expect", "/nonexistent/golden.pcap"], "cannot read /nonexistent/golden.pcap"),
    (["replay", MODES, "--out", "/nonexistent/dir/out.pcap"], "cannot write /nonexistent/dir/out.pcap"),
    (["replay", MODES, "--clock", "fixed:soon"], "is not an ISO 8601 time"),
    (["replay", MODES, "--upstream", "192.0.2.1:123"], "a replay asks only a server on loopback"),
    (["replay", MODES, "--upstream", "127.0.0.1:0"], "a replay asks only a server on loopback"),
    (["replay", MODES, "--gateway-ip", "not-an-ip"], "gateway_ip"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_gateway_flags_apply(capsys):
    """The gateway flags of `run` work here too: with another gateway address nothing in the capture is for us."""
    assert main(["replay", MODES, "--gateway-ip", "192.0.2.1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["drops"] == {"ipv4: destination is not a gateway address": 8}


def test_the_module_entry_point(tmp_path):
    out = subprocess.run([sys.executable, "-m", "gateway", "replay", MODES, "--clock", CLOCK, "--expect", MODES_GOLDEN],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
