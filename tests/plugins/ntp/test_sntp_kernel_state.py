"""Interpreting adjtimex's answer: synchronised or not, leap second pending."""

from __future__ import annotations

import pytest

from plugins.ntp.kernel_state import (
    STA_DEL, STA_INS, STA_UNSYNC, TIME_DEL, TIME_ERROR, TIME_INS, TIME_OK, TIME_OOP, TIME_WAIT,
    UNKNOWN_KERNEL_STATE, LeapPending, kernel_state_from_timex,
)


@pytest.mark.parametrize(("clock_state", "status", "synchronised"), [
    (TIME_OK, 0, True),
    (TIME_OK, 0x2001, True),         # STA_PLL | STA_NANO: a disciplined clock
    (TIME_WAIT, 0, True),
    (TIME_OOP, 0, True),
    (TIME_ERROR, STA_UNSYNC, False),  # what an undisciplined clock reports (maxerror past 16 s)
    (TIME_ERROR, 0, False),
    (TIME_OK, STA_UNSYNC, False),
])
def test_synchronised_needs_no_time_error_and_no_sta_unsync(clock_state, status, synchronised):
    assert kernel_state_from_timex(clock_state, status, 1000, 10).synchronised is synchronised


@pytest.mark.parametrize(("clock_state", "status", "leap"), [
    (TIME_OK, 0, LeapPending.NONE),
    (TIME_INS, STA_INS, LeapPending.INSERT),
    (TIME_DEL, STA_DEL, LeapPending.DELETE),
    (TIME_INS, 0, LeapPending.INSERT),
    (TIME_ERROR, STA_UNSYNC | STA_INS, LeapPending.INSERT),  # TIME_ERROR hides the leap state; the bit does not
    (TIME_ERROR, STA_UNSYNC | STA_DEL, LeapPending.DELETE),
    (TIME_OOP, 0, LeapPending.NONE),  # the leap second is under way: nothing pending any more
])
def test_leap_pending_from_return_value_or_status_bits(clock_state, status, leap):
    assert kernel_state_from_timex(clock_state, status, 0, 0).leap is leap


def test_error_bounds_are_carried_in_microseconds():
    state = kernel_state_from_timex(TIME_OK, 0, 16000000, 250)
    assert (state.maxerror_us, state.esterror_us, state.known) == (16000000, 250, True)


def test_an_unreadable_kernel_is_treated_as_synchronised_without_a_leap():
    assert UNKNOWN_KERNEL_STATE.synchronised is True
    assert UNKNOWN_KERNEL_STATE.leap is LeapPending.NONE
    assert UNKNOWN_KERNEL_STATE.known is False
    assert UNKNOWN_KERNEL_STATE.maxerror_us is None
