"""The host-clock edge: adjtimex read-only (modes = 0), precision measurement."""

from __future__ import annotations

import ctypes
import platform
import time

import pytest

from plugins.ntp import host_clock
from plugins.ntp.host_clock import Timex, measure_precision, read_kernel_time_state, read_timex
from plugins.ntp.kernel_state import STA_UNSYNC, TIME_ERROR, UNKNOWN_KERNEL_STATE

x86_64_linux = pytest.mark.skipif(platform.machine() != "x86_64" or platform.system() != "Linux",
                                  reason="struct timex layout checked for x86_64 Linux only")


@x86_64_linux
def test_struct_timex_has_glibcs_x86_64_layout():
    assert ctypes.sizeof(Timex) == 208
    assert Timex.offset.offset == 8       # after the 4-byte modes and 4 bytes of padding
    assert Timex.status.offset == 40
    assert Timex.constant.offset == 48
    assert Timex.time.offset == 72
    assert Timex.tick.offset == 88
    assert Timex.tai.offset == 160


@x86_64_linux
def test_reading_adjtimex_gives_plausible_kernel_values():
    result = read_timex()
    if result is None:
        pytest.skip("adjtimex is not readable here (seccomp?)")
    clock_state, timex = result
    assert 0 <= clock_state <= 5
    assert 9000 <= timex.tick <= 11000            # µs per tick at USER_HZ 100: 10000
    assert timex.tolerance == 500 << 16           # MAXFREQ: 500 ppm in 16.16
    assert 0 <= timex.maxerror <= 16_000_000 + 1_000_000
    assert abs(timex.time.tv_sec - time.time()) < 5
    assert timex.modes == 0


def test_kernel_state_agrees_with_the_raw_read():
    result = read_timex()
    state = read_kernel_time_state()
    if result is None:
        assert state == UNKNOWN_KERNEL_STATE
        return
    clock_state, timex = result
    assert state.known
    assert state.synchronised == (clock_state != TIME_ERROR and not timex.status & STA_UNSYNC)


def test_no_adjtimex_means_unknown_state_served_as_synchronised(monkeypatch):
    monkeypatch.setattr(host_clock, "_adjtimex", None)
    assert read_kernel_time_state() == UNKNOWN_KERNEL_STATE
    assert read_kernel_time_state().synchronised


def test_a_failing_adjtimex_means_unknown_state(monkeypatch):
    calls = []

    def refusing(timex_pointer):
        calls.append(ctypes.cast(timex_pointer, ctypes.POINTER(Timex)).contents.modes)
        return -1

    monkeypatch.setattr(host_clock, "_adjtimex", refusing)
    assert read_kernel_time_state() == UNKNOWN_KERNEL_STATE
    assert calls == [0]  # asked with modes = 0 only: read, never set


def test_precision_of_a_clock_that_ticks_a_millisecond_per_read_is_2_to_the_minus_9():
    ticks = iter(range(0, 10**12, 1_000_000))
    assert measure_precision(lambda: next(ticks)) == -9  # 1 ms rounds up to 2**-9 s (1.95 ms)


def test_precision_of_a_clock_that_never_moves_falls_back_to_clock_getres():
    expected = -29 if time.clock_getres(time.CLOCK_REALTIME) <= 1e-9 else None
    if expected is None:
        pytest.skip("CLOCK_REALTIME is coarser than 1 ns here")
    assert measure_precision(lambda: 42) == expected


def test_precision_of_the_host_clock_is_between_a_nanosecond_and_a_millisecond():
    precision = measure_precision()
    assert -30 <= precision <= -10
    assert 2.0 ** precision >= time.clock_getres(time.CLOCK_REALTIME)


def test_precision_needs_some_samples():
    with pytest.raises(ValueError):
        measure_precision(samples=2)
