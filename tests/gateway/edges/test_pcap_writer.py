"""gateway.edges.pcap_writer: nanosecond pcap written with struct, read back exactly by scapy and tcpdump."""

import io
import shutil
import struct
import subprocess
import sys

from pathlib import Path

import pytest

from gateway.edges.pcap_reader import open_capture
from gateway.edges.pcap_writer import NANO_MAGIC, SNAPLEN, PcapWriter, pcap_bytes

REPO = Path(__file__).resolve().parents[3]
FRAME = bytes.fromhex("ffffffffffff02000000000308060001080006040001020000000003c0a84103000000000000c0a84101")


def test_global_header_is_nanosecond_little_endian_ethernet():
    data = pcap_bytes([])
    assert len(data) == 24
    magic, major, minor, zone, sigfigs, snaplen, linktype = struct.unpack("<IHHiIII", data)
    assert (magic, major, minor, zone, sigfigs, snaplen, linktype) == (NANO_MAGIC, 2, 4, 0, 0, SNAPLEN, 1)


def test_records_round_trip_to_the_nanosecond(tmp_path):
    records = [(1_714_564_800_123_456_789, FRAME), (1_714_564_801_000_000_001, FRAME[:20]), (0, b"")]
    path = tmp_path / "out.pcap"
    path.write_bytes(pcap_bytes(records))
    capture = open_capture(str(path))
    read = [(r.ts_ns, r.data, r.wirelen, r.number) for r in capture.records()]
    assert read == [(ts, frame, len(frame), i + 1) for i, (ts, frame) in enumerate(records)]
    assert capture.format == "pcap (nanosecond)"
    assert not capture.problems


def test_writer_and_pcap_bytes_agree(tmp_path):
    records = [(1_000_000_000 + i, FRAME) for i in range(5)]
    path = tmp_path / "w.pcap"
    with PcapWriter(str(path)) as writer:
        for ts, frame in records:
            writer.write(ts, frame)
    assert writer.frames == 5
    assert path.read_bytes() == pcap_bytes(records)


def test_an_open_file_is_flushed_but_left_open():
    buffer = io.BytesIO()
    writer = PcapWriter(buffer)
    writer.write(5, FRAME)
    writer.close()
    assert not buffer.closed
    assert buffer.getvalue() == pcap_bytes([(5, FRAME)])


def test_frames_beyond_the_snap_length_are_cut_and_keep_their_wire_length(tmp_path):
    path = tmp_path / "cut.pcap"
    path.write_bytes(pcap_bytes([(1, FRAME)], snaplen=16))
    (record,) = open_capture(str(path)).records()
    assert record.data == FRAME[:16] and record.wirelen == len(FRAME)


def test_a_time_before_1970_is_refused():
    with pytest.raises(ValueError, match="before 1970"):
        pcap_bytes([(-1, FRAME)])


@pytest.mark.clients  # tcpdump: a real reader of the file
@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump missing (apt-get install tcpdump)")
def test_tcpdump_reads_the_nanosecond_timestamps(tmp_path):
    path = tmp_path / "arp.pcap"
    path.write_bytes(pcap_bytes([(1_714_564_800_123_456_789, FRAME)]))
    out = subprocess.run(["tcpdump", "-nn", "--nano", "-tt", "-r", str(path)], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("1714564800.123456789 ARP, Request who-has 192.168.65.1 tell 192.168.65.3")


def test_the_run_path_does_not_import_scapy():
    """`hostclock run --pcap` records with this writer; scapy (0.5 s, 70 MB) stays out of that process."""
    code = ("import sys, gateway.app.cli, gateway.app.runtime, gateway.edges.pcap_writer; gateway.app.cli._build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scapy'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
