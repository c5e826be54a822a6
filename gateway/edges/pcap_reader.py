"""Reading pcap and pcapng captures (scapy's raw readers), with every oddity counted, never raised.

`open_capture(path)` opens a classic pcap (micro- or nanosecond, either byte
order, gzip-compressed too) or a pcapng file; a missing or unreadable file,
or one that is no capture at all, raises `CaptureError` with one line. After
that, bad input is data: iterating `Capture.records()` yields what can be
read, and what cannot is counted in `Capture.problems` by reason:

* a classic pcap whose last record is cut short (the file ends inside it),
  or that ends inside a record header;
* whatever scapy's pcapng reader warns about (a block cut short, an unknown
  interface, ...), verbatim; it then stops reading, as it does.

Each record keeps the link type of its interface (pcapng files may mix
them) and its timestamp as integer Unix nanoseconds: exact for nanosecond
pcap and for pcapng with a decimal resolution, floored for a binary one. A
pcapng Simple Packet Block has no timestamp; it gets the previous record's.

scapy is imported here only, when a capture is opened: never on the
`hostclock run` path.
"""

from __future__ import annotations

import gzip
import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["CaptureRecord", "Capture", "CaptureError", "open_capture", "LINKTYPE_ETHERNET"]

LINKTYPE_ETHERNET = 1
_NS_PER_S = 1_000_000_000
_PCAP_GLOBAL_HEADER_LEN = 24
_PCAP_RECORD_HEADER_LEN = 16
# scapy's own note when a classic pcap record is cut short; counted here by our own check instead
_SCAPY_TRUNCATED_NOTE = "Pcap: packet has been truncated"


class CaptureError(Exception):
    """The file cannot be read as a capture at all; the message is one line."""


@dataclass(frozen=True, slots=True)
class CaptureRecord:
    #: 1-based position among the file's packets, as tcpdump and tshark number them
    number: int
    #: capture time, Unix nanoseconds
    ts_ns: int
    #: the link type of the interface it was captured on (1 = Ethernet)
    linktype: int
    #: the bytes captured (up to the snap length)
    data: bytes
    #: the frame's length on the wire; above len(data) when the capture's snap length cut it
    wirelen: int


class _WarningCollector(logging.Handler):
    """Collects scapy's reader warnings (deterministically: its rate limiter is switched off)."""

    def __init__(self, problems: Counter[str]) -> None:
        super().__init__(logging.WARNING)
        self.problems = problems

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message != _SCAPY_TRUNCATED_NOTE:
            self.problems[f"capture file: {message}"] += 1


class Capture:
    """An open capture file. Iterate `records()` once; read `problems` afterwards."""

    def __init__(self, path: str, reader: object) -> None:
        self.path = path
        self._reader = reader
        self.problems: Counter[str] = Counter()
        from scapy.utils import RawPcapNgReader

        if isinstance(reader, RawPcapNgReader):
            self.format = "pcapng"
        else:
            self.format = "pcap (nanosecond)" if reader.nano else "pcap (microsecond)"

    def records(self) -> Iterator[CaptureRecord]:
        from scapy.config import conf
        from scapy.error import log_runtime

        collector = _WarningCollector(self.problems)
        saved = conf.warning_threshold, log_runtime.propagate
        conf.warning_threshold = 0  # no rate limiting: every warning counted, the same every run
        log_runtime.propagate = False  # counted here, not printed on the console
        log_runtime.addHandler(collector)
        try:
            if self.format == "pcapng":
                yield from self._pcapng_records()
            else:
                yield from self._pcap_records()
        finally:
            log_runtime.removeHandler(collector)
            conf.warning_threshold, log_runtime.propagate = saved
            self.close()

    def _pcap_records(self) -> Iterator[CaptureRecord]:
        reader = self._reader
        scale = 1 if reader.nano else 1000
        linktype = reader.linktype
        consumed = _PCAP_GLOBAL_HEADER_LEN
        number = 0
        for data, meta in reader:
            consumed += _PCAP_RECORD_HEADER_LEN + meta.caplen
            if len(data) < meta.caplen:
                self.problems["capture file: the last record is cut short (the file ends inside it)"] += 1
                return
            number += 1
            yield CaptureRecord(number, meta.sec * _NS_PER_S + meta.usec * scale, linktype, data, meta.wirelen)
        size = _plain_file_size(reader)
        if size is not None and 0 < size - consumed < _PCAP_RECORD_HEADER_LEN:
            self.problems["capture file: ends inside a record header"] += 1

    def _pcapng_records(self) -> Iterator[CaptureRecord]:
        previous_ns = 0
        number = 0
        for data, meta in self._reader:
            number += 1
            if meta.tshigh is None:  # Simple Packet Block: no timestamp
                ts_ns = previous_ns
            else:
                ticks = (meta.tshigh << 32) | meta.tslow
                ts_ns = ticks * _NS_PER_S // meta.tsresol
            previous_ns = ts_ns
            yield CaptureRecord(number, ts_ns, meta.linktype, data, meta.wirelen)

    def close(self) -> None:
        close = getattr(self._reader, "close", None)
        if close is not None:
            close()


def _plain_file_size(reader: object) -> int | None:
    """The size of an uncompressed capture file, or None (gzip: its byte count is not the data's)."""
    f = getattr(reader, "f", None)
    if f is None or isinstance(f, gzip.GzipFile):
        return None
    try:
        return os.fstat(f.fileno()).st_size
    except (OSError, AttributeError, ValueError):
        return None


def open_capture(path: str) -> Capture:
    """Open `path` as pcap or pcapng; `CaptureError` (one line) if it cannot be."""
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise CaptureError(f"cannot read {path}: {e.strerror}") from None
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader

    try:
        reader = RawPcapReader(path)
    except Scapy_Exception as e:
        raise CaptureError(f"{path} is not a pcap or pcapng capture ({e})") from None
    except OSError as e:
        raise CaptureError(f"cannot read {path}: {e.strerror or e}") from None
    return Capture(path, reader)
