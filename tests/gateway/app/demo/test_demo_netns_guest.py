"""The netns guest's readings from the real clients' output: the sign flipped to guest minus host."""

import pytest

from gateway.app.demo.netns_guest import parse_chronyd_query, parse_ntpdig

# `ip netns exec NS ntpdig -j -t 2 192.168.65.1` through the gateway (ntpsec 1.2.2)
NTPDIG = ('{"time":"2026-12-01T21:16:28.147302+0000","offset":0.000121,"precision":0.000426,'
          '"host":"192.168.65.1","ip":"192.168.65.1","stratum":10,"leap":"no-leap","adjusted":false}\n')
# `chronyd -Q -d ... 'log rawmeasurements'` (chrony 4.3): its output and its measurements.log
CHRONYD = ("2026-12-01T21:16:28Z chronyd version 4.3 starting (+CMDMON +NTP)\n"
           "2026-12-01T21:16:28Z Disabled control of system clock\n"
           "2026-12-01T21:16:28Z System clock wrong by 0.000251 seconds (ignored)\n"
           "2026-12-01T21:16:28Z chronyd exiting\n")
MEASUREMENTS = (
    "=" * 40 + "\n"
    "   Date (UTC) Time     IP Address   L St 123 567 ABCD  LP RP Score    Offset  Peer del. Peer disp."
    "  Root del. Root disp. Refid     MTxRx\n" + "=" * 40 + "\n"
    "2026-12-01 21:16:28 192.168.65.1    N 10 111 111 1111   6  6 0.00  2.506e-04  6.900e-04  2.038e-06"
    "  0.000e+00  1.526e-05 7F7F0101 4B K K\n")


def test_ntpdig_offset_is_negated_and_its_plus_minus_is_the_error():
    offset, error = parse_ntpdig(NTPDIG)
    assert offset == pytest.approx(-0.000121)  # ntpdig: server minus local; the CSV: guest minus host
    assert error == pytest.approx(0.000426)


def test_ntpdig_without_an_answer_is_no_reading():
    with pytest.raises(ValueError):
        parse_ntpdig("192.168.65.1: no response\n")


def test_chronyd_offset_is_negated_and_the_error_is_half_the_delay_plus_dispersion():
    offset, error = parse_chronyd_query(CHRONYD, MEASUREMENTS)
    assert offset == pytest.approx(-0.000251)
    assert error == pytest.approx(6.9e-4 / 2 + 2.038e-06)


def test_chronyd_without_a_measurement_is_no_reading():
    with pytest.raises(ValueError):
        parse_chronyd_query("chronyd exiting\n", "")
