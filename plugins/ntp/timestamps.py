"""NTP timestamps: the 64-bit 32.32 format, its eras, and the 32-bit 16.16 short format.

RFC 5905 §6: "The 64-bit timestamp format is used in packet headers and other
places with limited word size. It includes a 32-bit unsigned seconds field
spanning 136 years and a 32-bit fraction field resolving 232 picoseconds. ...
The prime epoch, or base date of era 0, is 0 h 1 January 1900 UTC ... era 0
ends 2036-02-07 06:28:16 UTC" — the era number travels outside the packet, so
a timestamp is turned back into a date by choosing the era nearest a pivot
(RFC 5905 §6: "the correct era can be determined ... provided the two times
are within 68 years of each other").

All arithmetic is on integers (nanoseconds and 2**-32 s ticks), so there is
no float rounding anywhere: Unix ns -> NTP -> Unix ns is the identity.
"""

from __future__ import annotations

import math

__all__ = [
    "NTP_UNIX_OFFSET", "ERA_SECONDS", "ERA_NS", "NTP_TIMESTAMP_MAX", "NTP_SHORT_MAX",
    "unix_ns_to_ntp", "ntp_to_unix_ns", "ntp_era_of_unix_ns",
    "seconds_to_ntp_short", "ntp_short_to_seconds",
]

#: seconds from the NTP prime epoch (1900-01-01) to the Unix epoch (1970-01-01): 70 years, 17 leap days
NTP_UNIX_OFFSET = 2208988800
#: one era: the 32-bit seconds field wraps every 2**32 s (about 136 years)
ERA_SECONDS = 1 << 32
ERA_NS = ERA_SECONDS * 1_000_000_000
NTP_TIMESTAMP_MAX = (1 << 64) - 1
#: the largest 16.16 short value: 65535.99998 s
NTP_SHORT_MAX = 0xFFFFFFFF

_NS_PER_S = 1_000_000_000
_OFFSET_NS = NTP_UNIX_OFFSET * _NS_PER_S
_HALF_NS = _NS_PER_S // 2
_HALF_TICK = 1 << 31


def unix_ns_to_ntp(ns: int) -> int:
    """Unix nanoseconds (any era, negative before 1970) -> a 64-bit NTP timestamp.

    The fraction is rounded to the nearest 2**-32 s (half up), so the error is
    at most 0.12 ns; a carry from the fraction goes into the seconds, and the
    seconds wrap into the era (RFC 5905 §6), so 2036-02-07 06:28:16 UTC is 0.
    """
    ticks_since_1900 = ((ns + _OFFSET_NS) * ERA_SECONDS + _HALF_NS) // _NS_PER_S
    return ticks_since_1900 & NTP_TIMESTAMP_MAX


def ntp_to_unix_ns(ts: int, pivot_ns: int) -> int:
    """A 64-bit NTP timestamp -> Unix nanoseconds, in the era that puts it nearest `pivot_ns`.

    RFC 5905 §6 leaves the era to the reader; with the pivot (usually "now")
    within 68 years of the true time the answer is unambiguous. Rounded to the
    nearest nanosecond.
    """
    if not 0 <= ts <= NTP_TIMESTAMP_MAX:
        raise ValueError(f"NTP timestamp {ts} is not a 64-bit unsigned value")
    in_era_0 = ((ts * _NS_PER_S + _HALF_TICK) >> 32) - _OFFSET_NS
    era = (pivot_ns - in_era_0 + ERA_NS // 2) // ERA_NS
    return in_era_0 + era * ERA_NS


def ntp_era_of_unix_ns(ns: int) -> int:
    """The NTP era a Unix time falls in: 0 for 1900-2036, 1 for 2036-2172, -1 before 1900."""
    return (ns + _OFFSET_NS) // ERA_NS


def seconds_to_ntp_short(seconds: float) -> int:
    """Seconds -> the 32-bit NTP short format (16.16) of root delay and root dispersion.

    RFC 5905 §6: "The 32-bit short format is used in delay and dispersion
    header fields where the full resolution and range of the other formats are
    not justified. It includes a 16-bit unsigned seconds field and a 16-bit
    fraction field." Rounded up, so a delay or dispersion is never understated;
    saturates at the maximum instead of wrapping.
    """
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"{seconds!r} s: root delay and dispersion are non-negative")
    if seconds * 65536 >= NTP_SHORT_MAX:
        return NTP_SHORT_MAX
    return math.ceil(seconds * 65536)


def ntp_short_to_seconds(value: int) -> float:
    """The 32-bit NTP short format (16.16) -> seconds."""
    if not 0 <= value <= NTP_SHORT_MAX:
        raise ValueError(f"NTP short value {value} is not a 32-bit unsigned value")
    return value / 65536
