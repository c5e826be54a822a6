"""One reading of the guest's clock, and DIR/demo.csv: the readings, one row each.

The columns are those of `hostclock run --guest-clock-log`, so one tool reads both:
`time_unix_s,guest_ip,guest_mac,offset_s,error_s,source`, where `offset_s` is the
guest's clock minus the host's (negative: the guest is behind) and `error_s` the
reading's half-width. An NTP client reports the opposite sign (RFC 5905's theta is
the server's clock minus the client's), so its offset is negated here.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["Reading", "ReadingsCsv", "CSV_COLUMNS", "read_csv"]

CSV_COLUMNS = ("time_unix_s", "guest_ip", "guest_mac", "offset_s", "error_s", "source")


@dataclass(frozen=True, slots=True)
class Reading:
    #: host wall-clock time of the reading (seconds since the epoch)
    time_unix_s: float
    guest_ip: str
    guest_mac: str
    #: guest clock minus host clock, seconds
    offset_s: float
    #: half-width of the reading, seconds (resolution and round trip)
    error_s: float
    #: who read it: "ntpdig", "chronyd", "icmp-timestamp", ...
    source: str

    @classmethod
    def of_watcher(cls, offset: Any) -> "Reading":
        """A reading of the gateway's guest-clock watcher (`gateway.core.guest_clock.GuestClockOffset`)."""
        return cls(offset.time_unix_s, offset.guest_ip, offset.guest_mac, offset.offset_s, offset.error_s,
                   offset.source)

    def row(self) -> tuple[str, ...]:
        return (f"{self.time_unix_s:.6f}", self.guest_ip, self.guest_mac, f"{self.offset_s:.9f}",
                f"{self.error_s:.9f}", self.source)


class ReadingsCsv:
    """DIR/demo.csv, written as the readings come (a row is on disk once the demo has seen it)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.rows = 0
        self._file: TextIO = open(path, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self._writer.writerow(CSV_COLUMNS)
        self._file.flush()

    def write(self, reading: Reading) -> None:
        self._writer.writerow(reading.row())
        self._file.flush()
        self.rows += 1

    def close(self) -> None:
        self._file.close()


def read_csv(path: str) -> list[Reading]:
    """The readings of a demo.csv (or a --guest-clock-log file)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [Reading(float(r["time_unix_s"]), r["guest_ip"], r["guest_mac"], float(r["offset_s"]),
                        float(r["error_s"]), r["source"]) for r in csv.DictReader(f)]
