"""`--guest-clock-log FILE`: one CSV row per reading of a guest's clock, flushed as it is written.

Columns (the header is the first line)::

    time_unix_s,guest_ip,guest_mac,offset_s,error_s,source

`time_unix_s` is the host's Unix time of the reading; `offset_s` the guest's
clock minus the host's (negative: the guest is behind); `error_s` the reading's
half-width (the true offset is within offset_s +/- error_s); `source` how it
was read: ``icmp`` (ICMP timestamps) or ``ntp`` (the guest's own NTP requests).
Each row is flushed to the file as it is written, so a reader (a plot, a test,
an experiment) sees it at once and a crash loses none. A write that fails
(a full disk) raises OSError; the runtime then stops the log and serves on.
"""

from __future__ import annotations

from gateway.core.guest_clock import GuestClockOffset

__all__ = ["GuestClockLog", "HEADER"]

HEADER = "time_unix_s,guest_ip,guest_mac,offset_s,error_s,source"


class GuestClockLog:
    """A CSV file of guest clock readings, created (or emptied) on opening, the header written at once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.rows = 0
        self._file = open(path, "w", encoding="ascii", newline="")
        try:
            self._file.write(HEADER + "\n")
            self._file.flush()
        except OSError as e:  # a full disk at start-up: say which file
            try:
                self._file.close()
            except OSError:
                pass
            raise OSError(e.errno, e.strerror, path) from None

    def write(self, offset: GuestClockOffset) -> None:
        """One row, flushed."""
        self._file.write(f"{offset.time_unix_s:.6f},{offset.guest_ip},{offset.guest_mac},"
                         f"{offset.offset_s:.6f},{offset.error_s:.6f},{offset.source}\n")
        self._file.flush()
        self.rows += 1

    def close(self) -> None:
        self._file.close()
