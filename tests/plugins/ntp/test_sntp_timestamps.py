"""NTP timestamps: era 0 and era 1 around 2036, 1900 and 1970, exact rounding, round trips."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from fractions import Fraction

import pytest
from hypothesis import given, strategies as st

from plugins.ntp.timestamps import (
    ERA_NS, NTP_SHORT_MAX, NTP_TIMESTAMP_MAX, NTP_UNIX_OFFSET, ntp_era_of_unix_ns,
    ntp_short_to_seconds, ntp_to_unix_ns, seconds_to_ntp_short, unix_ns_to_ntp,
)

UTC = timezone.utc
NS = 1_000_000_000


def unix_ns(*args: int) -> int:
    """A UTC calendar date as Unix ns, computed with datetime (not with the module's constant)."""
    delta = datetime(*args, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * NS + delta.microseconds * 1000


ERA_1_START_NS = unix_ns(2036, 2, 7, 6, 28, 16)
NOW_NS = unix_ns(2025, 6, 1)


def test_offset_is_seventy_years_from_1900_to_1970():
    assert NTP_UNIX_OFFSET * NS == -unix_ns(1900, 1, 1)


def test_unix_epoch_is_the_offset_with_no_fraction():
    assert unix_ns_to_ntp(0) == NTP_UNIX_OFFSET << 32


def test_1900_is_zero_and_a_nanosecond_earlier_is_the_end_of_era_minus_one():
    assert unix_ns_to_ntp(unix_ns(1900, 1, 1)) == 0
    before = unix_ns_to_ntp(unix_ns(1900, 1, 1) - 1)
    assert before == NTP_TIMESTAMP_MAX + 1 - 4  # 1 ns = 4.29 ticks, rounded to 4
    assert ntp_era_of_unix_ns(unix_ns(1900, 1, 1) - 1) == -1


def test_era_0_ends_2036_02_07_06_28_16_utc():
    assert ERA_1_START_NS == (2**32 - NTP_UNIX_OFFSET) * NS
    assert unix_ns_to_ntp(ERA_1_START_NS - NS) == 0xFFFFFFFF << 32
    assert unix_ns_to_ntp(ERA_1_START_NS) == 0
    assert unix_ns_to_ntp(ERA_1_START_NS + NS) == 1 << 32
    assert ntp_era_of_unix_ns(ERA_1_START_NS - 1) == 0
    assert ntp_era_of_unix_ns(ERA_1_START_NS) == 1


@pytest.mark.parametrize("pivot_ns", [ERA_1_START_NS - 3600 * NS, ERA_1_START_NS + 3600 * NS, NOW_NS])
def test_the_era_nearest_the_pivot_is_chosen_on_both_sides_of_2036(pivot_ns):
    last_second_of_era_0 = 0xFFFFFFFF << 32
    first_second_of_era_1 = 1 << 32
    assert ntp_to_unix_ns(last_second_of_era_0, pivot_ns) == ERA_1_START_NS - NS
    assert ntp_to_unix_ns(first_second_of_era_1, pivot_ns) == ERA_1_START_NS + NS


def test_a_pivot_in_the_2100s_reads_a_small_timestamp_as_era_1():
    ts = unix_ns_to_ntp(unix_ns(2100, 1, 1))
    assert ts < 1 << 63  # bit 0 clear: RFC 4330 §3 "the time is in the range 2036-2104"
    assert ntp_to_unix_ns(ts, unix_ns(2090, 1, 1)) == unix_ns(2100, 1, 1)
    assert ntp_to_unix_ns(ts, unix_ns(1980, 1, 1)) == unix_ns(2100, 1, 1) - ERA_NS


def test_1970_reads_back_as_1970_with_a_present_day_pivot():
    assert ntp_to_unix_ns(NTP_UNIX_OFFSET << 32, NOW_NS) == 0


@pytest.mark.parametrize("nanoseconds", [0, 1, 2, 3, 123_456_789, 499_999_999, 500_000_000, 999_999_999])
def test_the_fraction_is_exactly_rounded(nanoseconds):
    ns = NOW_NS + nanoseconds
    ts = unix_ns_to_ntp(ns)
    exact = Fraction(nanoseconds, NS) * 2**32
    assert abs((ts & 0xFFFFFFFF) - exact) <= Fraction(1, 2)
    assert ts >> 32 == (NOW_NS // NS + NTP_UNIX_OFFSET) % 2**32
    assert abs(Fraction(ts & 0xFFFFFFFF, 2**32) * NS - nanoseconds) < 1  # under a nanosecond


def test_ntp_to_unix_rounds_a_sub_nanosecond_fraction_to_the_nearest_nanosecond():
    base = unix_ns_to_ntp(NOW_NS)
    assert ntp_to_unix_ns(base + 2, NOW_NS) == NOW_NS       # 0.47 ns
    assert ntp_to_unix_ns(base + 3, NOW_NS) == NOW_NS + 1   # 0.70 ns


@pytest.mark.parametrize("bad", [-1, NTP_TIMESTAMP_MAX + 1])
def test_a_timestamp_outside_64_bits_is_misuse(bad):
    with pytest.raises(ValueError, match="64-bit"):
        ntp_to_unix_ns(bad, NOW_NS)


HALF_ERA_NS = ERA_NS // 2


@given(ns=st.integers(min_value=unix_ns(1800, 1, 1), max_value=unix_ns(2300, 1, 1)),
       skew=st.integers(min_value=-HALF_ERA_NS + 1, max_value=HALF_ERA_NS - 1))
def test_unix_ns_round_trips_through_ntp_with_any_pivot_within_68_years(ns, skew):
    ts = unix_ns_to_ntp(ns)
    assert 0 <= ts <= NTP_TIMESTAMP_MAX
    assert ntp_to_unix_ns(ts, ns + skew) == ns


@given(ts=st.integers(min_value=0, max_value=NTP_TIMESTAMP_MAX))
def test_ntp_round_trips_through_unix_ns_within_one_rounding_step(ts):
    back = unix_ns_to_ntp(ntp_to_unix_ns(ts, NOW_NS))
    difference = (back - ts) % 2**64
    assert min(difference, 2**64 - difference) <= 3  # half a nanosecond is 2.15 ticks


def test_era_helper_agrees_with_datetime():
    assert ntp_era_of_unix_ns(unix_ns(1950, 1, 1)) == 0
    assert ntp_era_of_unix_ns(unix_ns(2100, 1, 1)) == 1
    assert ntp_era_of_unix_ns(unix_ns(2200, 1, 1)) == 2  # era 1 ends in 2172
    assert ntp_era_of_unix_ns(unix_ns(1850, 1, 1)) == -1


@pytest.mark.parametrize(("seconds", "short"), [
    (0.0, 0), (1.0, 0x00010000), (1.5, 0x00018000), (2.0**-16, 1), (2.0**-24, 1), (1e-9, 1),
    (0.25 + 2.0**-17, 0x4001), (65535.99998, NTP_SHORT_MAX), (1e9, NTP_SHORT_MAX), (math.inf, NTP_SHORT_MAX),
])
def test_short_format_rounds_up_and_saturates(seconds, short):
    assert seconds_to_ntp_short(seconds) == short


@pytest.mark.parametrize("bad", [-1e-9, math.nan])
def test_short_format_refuses_negative_and_nan(bad):
    with pytest.raises(ValueError):
        seconds_to_ntp_short(bad)


def test_short_format_reads_back():
    assert ntp_short_to_seconds(0x00018000) == 1.5
    assert ntp_short_to_seconds(seconds_to_ntp_short(0.001)) == pytest.approx(0.001, abs=2**-16)
    with pytest.raises(ValueError):
        ntp_short_to_seconds(NTP_SHORT_MAX + 1)


def test_datetime_and_module_agree_on_a_date_after_2036():
    dt = datetime(2040, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    ns = unix_ns(2040, 3, 4, 5, 6, 7, 890123)
    ts = unix_ns_to_ntp(ns)
    era_1_start = datetime(1900, 1, 1, tzinfo=UTC) + timedelta(seconds=2**32)
    assert ts >> 32 == int((dt - era_1_start).total_seconds())
