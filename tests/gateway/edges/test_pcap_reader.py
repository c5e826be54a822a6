"""gateway.edges.pcap_reader: pcap and pcapng in, every oddity counted by reason, only unreadable files refused."""

import gzip
import struct

import pytest

from gateway.edges.pcap_reader import CaptureError, open_capture
from gateway.edges.pcap_writer import pcap_bytes

FRAME = bytes(range(60))
TS = 1_714_564_800_123_456_789


def _classic(records, *, nano=True, endian="<", linktype=1, snaplen=65535):
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)
    for ts, data, wirelen in records:
        seconds, rest = divmod(ts, 1_000_000_000)
        out += struct.pack(endian + "IIII", seconds, rest if nano else rest // 1000, len(data), wirelen) + data
    return out


def _read(tmp_path, data, name="in.pcap"):
    path = tmp_path / name
    path.write_bytes(data)
    capture = open_capture(str(path))
    return capture, list(capture.records())


def test_microsecond_big_endian_pcap(tmp_path):
    capture, records = _read(tmp_path, _classic([(TS, FRAME, 60)], nano=False, endian=">"))
    assert capture.format == "pcap (microsecond)"
    assert [(r.ts_ns, r.data, r.linktype) for r in records] == [(TS // 1000 * 1000, FRAME, 1)]


def test_gzip_compressed_pcap(tmp_path):
    _, records = _read(tmp_path, gzip.compress(pcap_bytes([(TS, FRAME)])), "in.pcap.gz")
    assert [(r.ts_ns, r.data) for r in records] == [(TS, FRAME)]


def test_link_type_and_snap_length_cut_are_kept_for_the_caller(tmp_path):
    _, records = _read(tmp_path, _classic([(TS, FRAME[:20], 60)], linktype=101))
    assert (records[0].linktype, len(records[0].data), records[0].wirelen) == (101, 20, 60)


def test_a_record_cut_by_the_end_of_the_file_is_counted_not_yielded(tmp_path):
    data = pcap_bytes([(TS, FRAME), (TS + 1, FRAME)])
    capture, records = _read(tmp_path, data[:-5])
    assert len(records) == 1
    assert dict(capture.problems) == {"capture file: the last record is cut short (the file ends inside it)": 1}


def test_a_file_ending_inside_a_record_header_is_counted(tmp_path):
    capture, records = _read(tmp_path, pcap_bytes([(TS, FRAME)]) + bytes(9))
    assert len(records) == 1
    assert dict(capture.problems) == {"capture file: ends inside a record header": 1}


def _pcapng_block(block_type, body):
    body += bytes(-len(body) % 4)
    return struct.pack("<II", block_type, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def _pcapng(*packets, tsresol=None):
    options = b"" if tsresol is None else struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
    out = _pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += _pcapng_block(1, struct.pack("<HHI", 1, 0, 65535) + options)
    for ticks, data in packets:
        out += _pcapng_block(6, struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)) + data)
    return out


@pytest.mark.parametrize("tsresol, ticks, expected_ns", [
    (None, TS // 1000, TS // 1000 * 1000),  # default: microseconds
    (9, TS, TS),  # 10^-9
    (0x80 | 20, (TS * (1 << 20)) // 1_000_000_000, None),  # 2^-20 s: floored to the nanosecond
])
def test_pcapng_timestamp_resolutions(tmp_path, tsresol, ticks, expected_ns):
    capture, records = _read(tmp_path, _pcapng((ticks, FRAME), tsresol=tsresol), "in.pcapng")
    assert capture.format == "pcapng"
    if expected_ns is None:
        expected_ns = ticks * 1_000_000_000 // (1 << 20)
        assert abs(expected_ns - TS) < 1000
    assert [(r.number, r.ts_ns, r.data) for r in records] == [(1, expected_ns, FRAME)]


def test_a_cut_pcapng_block_is_reported_in_scapys_words(tmp_path):
    data = _pcapng((TS // 1000, FRAME), (TS // 1000 + 1, FRAME))
    capture, records = _read(tmp_path, data[:-10], "cut.pcapng")
    assert len(records) == 1
    assert list(capture.problems) == ["capture file: PcapNg: Invalid Block body length (too short)"]


def test_warnings_are_counted_the_same_every_time_and_not_printed(tmp_path, capsys):
    data = _pcapng((TS // 1000, FRAME), (TS // 1000 + 1, FRAME))[:-10]
    problems = [dict(_read(tmp_path, data, "cut.pcapng")[0].problems) for _ in range(5)]
    assert problems == problems[:1] * 5
    assert "WARNING" not in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    (None, "cannot read {path}: No such file or directory"),
    (b"", "is not a pcap or pcapng capture"),
    (b"this is no capture at all, just text\n" * 4, "is not a pcap or pcapng capture"),
])
def test_unreadable_files_raise_one_line(tmp_path, content, message):
    path = tmp_path / "bad.pcap"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CaptureError) as error:
        open_capture(str(path))
    text = str(error.value)
    assert message.format(path=path) in text and "\n" not in text


def test_a_directory_is_unreadable(tmp_path):
    with pytest.raises(CaptureError, match="cannot read"):
        open_capture(str(tmp_path))
