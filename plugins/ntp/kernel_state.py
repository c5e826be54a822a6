"""What the host kernel says about its clock: synchronised or not, a leap second pending.

Pure interpretation of the values `adjtimex(2)` returns (reading them is
`host_clock.read_kernel_time_state`). From the Linux adjtimex(2) manual and
include/uapi/linux/timex.h:

* return value: the clock state, TIME_OK 0, TIME_INS 1 (insert a leap second
  at the end of the UTC day), TIME_DEL 2 (delete one), TIME_OOP 3 (leap second
  in progress), TIME_WAIT 4 (one has just happened), TIME_ERROR 5 ("clock not
  synchronized"; also returned whenever STA_UNSYNC is set, which hides the
  leap state, so the STA_INS/STA_DEL status bits are read too);
* status bits: STA_INS 0x10, STA_DEL 0x20, STA_UNSYNC 0x40 (set by the kernel
  once maxerror passes 16 s, cleared by a daemon such as chronyd or ntpd);
* maxerror / esterror: microseconds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["LeapPending", "KernelTimeState", "kernel_state_from_timex", "UNKNOWN_KERNEL_STATE",
           "TIME_OK", "TIME_INS", "TIME_DEL", "TIME_OOP", "TIME_WAIT", "TIME_ERROR",
           "STA_INS", "STA_DEL", "STA_UNSYNC"]

TIME_OK = 0
TIME_INS = 1
TIME_DEL = 2
TIME_OOP = 3
TIME_WAIT = 4
TIME_ERROR = 5

STA_INS = 0x0010
STA_DEL = 0x0020
STA_UNSYNC = 0x0040


class LeapPending(enum.StrEnum):
    """A leap second the kernel will apply at the end of the current UTC day."""

    NONE = "none"
    INSERT = "insert"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class KernelTimeState:
    """The host clock as the kernel sees it.

    `known` is False when adjtimex could not be read; then `synchronised` is
    True (the host clock is served as synchronised, the default anyway) and
    the error bounds are None.
    """

    synchronised: bool
    leap: LeapPending
    maxerror_us: int | None
    esterror_us: int | None
    known: bool = True


#: what is assumed when adjtimex is unavailable: a synchronised clock, no leap second
UNKNOWN_KERNEL_STATE = KernelTimeState(synchronised=True, leap=LeapPending.NONE,
                                       maxerror_us=None, esterror_us=None, known=False)


def kernel_state_from_timex(clock_state: int, status: int, maxerror_us: int, esterror_us: int) -> KernelTimeState:
    """Interpret adjtimex's return value and `struct timex` fields (see the module docstring)."""
    synchronised = clock_state != TIME_ERROR and not status & STA_UNSYNC
    if clock_state == TIME_INS or status & STA_INS:
        leap = LeapPending.INSERT
    elif clock_state == TIME_DEL or status & STA_DEL:
        leap = LeapPending.DELETE
    else:
        leap = LeapPending.NONE
    return KernelTimeState(synchronised=synchronised, leap=leap,
                           maxerror_us=maxerror_us, esterror_us=esterror_us)
