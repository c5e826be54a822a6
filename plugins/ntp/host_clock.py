"""The edge that reads the host clock: the time, its precision, the kernel's sync state.

Everything here READS. `read_kernel_time_state` calls adjtimex(2) with
`modes = 0`, which the manual defines as a pure query ("If modes is zero, no
parameters are altered") and which needs no privilege; no other mode is ever
passed, and the struct is built inside the function so no caller can set one.
"""

from __future__ import annotations

import ctypes
import math
import statistics
import time
from typing import Callable

from plugins.ntp.kernel_state import UNKNOWN_KERNEL_STATE, KernelTimeState, kernel_state_from_timex

__all__ = ["now_ns", "measure_precision", "read_timex", "read_kernel_time_state", "Timex"]

#: the host clock: Unix time in nanoseconds (CLOCK_REALTIME)
now_ns: Callable[[], int] = time.time_ns


def measure_precision(read_ns: Callable[[], int] = time.time_ns, *, samples: int = 1001) -> int:
    """The precision exponent for the NTP header: log2 seconds of the clock's reading error.

    RFC 5905 §7.3: "Precision: 8-bit signed integer representing the
    precision of the system clock, in log2 seconds. For instance, a value of
    -18 corresponds to a precision of about one microsecond. The precision can
    be determined when the service first starts up as the minimum time of
    several iterations to read the system clock." RFC 4330 §4 asks for the
    value "rounded to the next larger power of two", so this takes the ceiling
    of log2 of the larger of clock_getres(CLOCK_REALTIME) and the median time
    between two back-to-back reads (the median, not the minimum, because a
    Python read costs far more than the kernel's tick: the honest error of a
    timestamp taken here is the cost of taking it).
    """
    if samples < 3:
        raise ValueError(f"samples={samples}: measure at least 3 clock reads")
    readings = [read_ns() for _ in range(samples)]
    gaps = [b - a for a, b in zip(readings, readings[1:]) if b > a]
    median_read_ns = statistics.median(gaps) if gaps else 0
    try:
        resolution_ns = time.clock_getres(time.CLOCK_REALTIME) * 1e9
    except (AttributeError, OSError):
        resolution_ns = 0.0
    error_ns = max(median_read_ns, resolution_ns, 1.0)
    return math.ceil(math.log2(error_ns * 1e-9))


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class Timex(ctypes.Structure):
    """glibc's `struct timex` (<sys/timex.h>); ctypes adds the padding after the ints.

    On x86_64 it is 208 bytes: `modes` is an unsigned int, then longs, with the
    ints `status`, `shift` and `tai` each followed by 4 bytes of padding, and
    44 reserved bytes at the end.
    """

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


def _load_adjtimex():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.adjtimex
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.POINTER(Timex)]
    function.restype = ctypes.c_int
    return function


_adjtimex = _load_adjtimex()


def read_timex() -> tuple[int, Timex] | None:
    """adjtimex(2) with modes = 0 (read only): (clock state, struct timex), or None if unavailable."""
    if _adjtimex is None:
        return None
    timex = Timex()  # zero-filled, so modes = 0: a query that alters nothing
    clock_state = _adjtimex(ctypes.byref(timex))
    if clock_state < 0:
        return None  # EPERM from a seccomp filter, ENOSYS, ...
    return clock_state, timex


def read_kernel_time_state() -> KernelTimeState:
    """The kernel's view of the host clock; UNKNOWN_KERNEL_STATE (served as synchronised) if unreadable."""
    result = read_timex()
    if result is None:
        return UNKNOWN_KERNEL_STATE
    clock_state, timex = result
    return kernel_state_from_timex(clock_state, timex.status, timex.maxerror, timex.esterror)
