"""The pcap/pcapng reader (`gateway.edges.pcap_reader`), on whatever bytes a file holds.

Properties: opening raises nothing but `CaptureError`; iterating the records raises nothing
(what cannot be read is counted in `problems`); record numbers run 1, 2, 3...; no record
holds more bytes than the file; a cut-short file is counted, not raised.
"""

from __future__ import annotations

import atexit
import os
import shutil
import struct
import tempfile

from bench.fuzz.frame_checks import require
from gateway.edges.pcap_reader import CaptureError, open_capture

NAME = "pcap_reader"
_DIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
_TMP = tempfile.mkdtemp(prefix="hc-fuzz-pcap-", dir=_DIR)
_PATH = os.path.join(_TMP, "input.pcap")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)  # the harness's scratch file goes with the process


def seeds() -> list[bytes]:
    frame = bytes(range(60))
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    nano = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    record = struct.pack("<IIII", 1_700_000_000, 5, 60, 60) + frame
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHI", 1, 20, 1, 0, 65535) + struct.pack("<I", 20)
    epb_body = struct.pack("<IIIII", 0, 0, 5, 60, 60) + frame
    epb = struct.pack("<II", 6, 12 + len(epb_body)) + epb_body + struct.pack("<I", 12 + len(epb_body))
    return [header + record * 2, header + record[:30], nano + struct.pack(">IIII", 1, 2, 60, 60) + frame,
            shb + idb + epb]


def check(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    try:
        capture = open_capture(_PATH)
    except CaptureError as e:
        require("\n" not in str(e), "a multi-line CaptureError")
        return
    try:
        expected = 1
        for record in capture.records():
            require(record.number == expected, f"record {record.number} after {expected - 1}")
            require(len(record.data) <= len(data), "a record larger than the file")
            require(isinstance(record.ts_ns, int) and isinstance(record.linktype, int), "record fields")
            expected += 1
            if expected > 10_000:
                break
        for reason, n in capture.problems.items():
            require(isinstance(reason, str) and n > 0, "problems are reasons with counts")
    finally:
        capture.close()
