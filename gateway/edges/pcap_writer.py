"""Writing nanosecond pcap files with `struct`: no scapy, cheap enough for the live hot path.

The classic libpcap format with the nanosecond magic (0xa1b23c4d), written
little-endian, link type 1 (Ethernet), snap length 262144 (tcpdump's default):

    global header  magic u32, version 2.4 (u16, u16), thiszone i32 = 0,
                   sigfigs u32 = 0, snaplen u32, linktype u32        24 bytes
    each record    ts_sec u32, ts_nsec u32, caplen u32, wirelen u32  16 bytes
                   then caplen bytes of frame

tcpdump, tshark and scapy read it; timestamps are integers of nanoseconds,
so what is written is exactly what was given (the replay's outputs are
byte-identical run after run). Frames longer than the snap length are cut
to it, with `wirelen` keeping the true length, as a capture tool does.

`PcapWriter` writes through a large buffer (one `write` call per frame into
memory; the disk sees a write only when the buffer fills or on `flush`), so
recording live traffic costs little on the hot path. `pcap_bytes` renders
records in memory, for comparisons.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import BinaryIO

__all__ = ["PcapWriter", "pcap_bytes", "GLOBAL_HEADER", "RECORD_HEADER", "NANO_MAGIC",
           "LINKTYPE_ETHERNET", "SNAPLEN"]

NANO_MAGIC = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144
GLOBAL_HEADER = struct.Struct("<IHHiIII")
RECORD_HEADER = struct.Struct("<IIII")
_NS_PER_S = 1_000_000_000
_BUFFER_SIZE = 1 << 20


def _header(snaplen: int, linktype: int) -> bytes:
    return GLOBAL_HEADER.pack(NANO_MAGIC, 2, 4, 0, 0, snaplen, linktype)


def _record(ts_ns: int, frame: bytes, snaplen: int) -> bytes:
    if ts_ns < 0:
        raise ValueError(f"timestamp {ts_ns} ns is before 1970: pcap cannot hold it")
    seconds, nanoseconds = divmod(ts_ns, _NS_PER_S)
    captured = frame[:snaplen]
    return RECORD_HEADER.pack(seconds & 0xFFFFFFFF, nanoseconds, len(captured), len(frame)) + captured


def pcap_bytes(records: Iterable[tuple[int, bytes]], *, snaplen: int = SNAPLEN,
               linktype: int = LINKTYPE_ETHERNET) -> bytes:
    """A whole nanosecond pcap file holding `records` ((Unix ns, frame) pairs), as bytes."""
    return _header(snaplen, linktype) + b"".join(_record(ts, frame, snaplen) for ts, frame in records)


class PcapWriter:
    """Appends (timestamp, frame) records to a nanosecond pcap file.

    `file` is a path (created or truncated) or an open binary file (not
    closed by `close` unless this writer opened it). The global header is
    written at once, so even a capture with no frames is a valid file.
    """

    def __init__(self, file: str | BinaryIO, *, snaplen: int = SNAPLEN, linktype: int = LINKTYPE_ETHERNET) -> None:
        if isinstance(file, str):
            self._file: BinaryIO = open(file, "wb", buffering=_BUFFER_SIZE)
            self._owned = True
        else:
            self._file = file
            self._owned = False
        self.path = file if isinstance(file, str) else getattr(file, "name", None)
        self.snaplen = snaplen
        self.frames = 0
        self._file.write(_header(snaplen, linktype))

    def write(self, ts_ns: int, frame: bytes) -> None:
        """One record stamped `ts_ns` (Unix nanoseconds)."""
        self._file.write(_record(ts_ns, frame, self.snaplen))
        self.frames += 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if self._file.closed:
            return
        if self._owned:
            self._file.close()
        else:
            self._file.flush()

    def __enter__(self) -> "PcapWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
