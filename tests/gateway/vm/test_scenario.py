"""gateway/vm/scenario.py: a scenario's kernel command line, and the guest's
console lines read as offsets with one sign (guest minus host)."""

from __future__ import annotations

import pytest

from gateway.vm import scenario
from gateway.vm.scenario import Scenario, observe


def test_tick_ppm_is_100_ppm_per_unit():
    assert scenario.tick_ppm(9993) == pytest.approx(-700.0)
    assert scenario.tick_ppm(9800) == pytest.approx(-20000.0)
    assert scenario.tick_ppm(10000) == 0.0


def test_cmdline_words():
    words = Scenario(tick=9993, policy="chronyd-tuned", delay_s=40).cmdline().split()
    assert "hostclock.mode=drift" in words
    assert "hostclock.tick=9993" in words
    assert "hostclock.policy=chronyd-tuned" in words
    assert "hostclock.delay=40" in words
    assert "hostclock.minpoll=-2" in words and "hostclock.maxpoll=0" in words
    assert "hostclock.makestep=0.1,-1" in words
    assert all(w.startswith("hostclock.") and "=" in w for w in words)
    assert "hostclock.observe=off" in Scenario(observe_poll=None).cmdline().split()
    assert Scenario(tick="s5").name == "s5" and Scenario(tick="s5").ppm is None
    assert not any(w.startswith("hostclock.start=") for w in words)  # on the host's clock unless asked
    assert "hostclock.start=-3" in Scenario(start_offset_s=-3).cmdline().split()


@pytest.mark.parametrize("kw", [
    {"policy": "ntpd"}, {"tick": 8000}, {"tick": "fast"}, {"minpoll": 3, "maxpoll": 1},
    {"probe_s": -1}, {"duration_s": 1.5}, {"start_offset_s": 1.5}, {"start_offset_s": 86_401},
])
def test_bad_scenarios_are_refused(kw):
    with pytest.raises(ValueError):
        Scenario(**kw)


def test_probe_wrong_by_means_behind():
    # chronyd -Q's "System clock wrong by +X" is a clock X behind: guest - host = -X
    o = observe(1.0, "HOSTCLOCK-OBS probe wrong_by=0.012500")
    assert (o.source, o.offset_s, o.t) == ("guest-probe", pytest.approx(-0.0125), 1.0)
    assert observe(1.0, "HOSTCLOCK-OBS sntpc wrong_by=-0.5").offset_s == pytest.approx(0.5)
    assert observe(1.0, "HOSTCLOCK-OBS probe failed") is None
    assert observe(1.0, "HOSTCLOCK-OBS first wrong_by=0.9").source == "guest-first"


MEASUREMENT = ("HOSTCLOCK-LOG {kind} 2026-12-01 21:16:00 192.168.65.1    N 10 111 111 {t3}  -2 -2 0.70"
               " -3.723e-04  1.297e-03  2.431e-07  0.000e+00  1.526e-05 7F7F0101 4B K K")


def test_measurements_theta_positive_means_slow():
    # RFC 5905's theta (chrony: "positive indicates that the local clock is slow")
    o = observe(2.0, MEASUREMENT.format(kind="measurements", t3="1111"))
    assert o.source == "guest-measurements"
    assert o.offset_s == pytest.approx(3.723e-4)
    assert o.extra["delay_s"] == pytest.approx(1.297e-3)
    rejected = observe(2.0, MEASUREMENT.format(kind="observer", t3="1101"))
    assert rejected.source == "guest-observer-rejected"


def test_tracking_offset_positive_means_ahead():
    line = ("HOSTCLOCK-LOG tracking 2026-12-01 21:15:58 192.168.65.1    11    -46.070    717.176"
            " -1.482e-04 N  1  1.170e-04  3.387e-04  9.410e-04  1.798e-04  1.186e+00")
    o = observe(3.0, line)
    assert o.source == "guest-tracking"
    assert o.offset_s == pytest.approx(-1.482e-4)
    assert o.extra["freq_ppm"] == pytest.approx(-46.07)


def test_daemon_step_and_other_lines():
    o = observe(4.0, "guest-chronyd: 2026-12-01T21:25:28Z System clock was stepped by 20.000537 seconds")
    assert o.source == "guest-step" and o.offset_s == pytest.approx(-20.000537)
    assert observe(4.0, "HOSTCLOCK-OBS tick value=9993").extra == {"tick": 9993}
    assert observe(4.0, "HOSTCLOCK-OBS policy name=sntpc").extra == {"policy": "sntpc"}
    assert observe(4.0, "HOSTCLOCK-LOG measurements garbage") is None
    assert observe(4.0, "[    0.357504] random kernel line") is None
