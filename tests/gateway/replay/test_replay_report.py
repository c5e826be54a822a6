"""gateway.replay.engine.report: the offset and delay a client would compute, and the summary's shape."""

import json
from collections import Counter

import pytest

from gateway.replay.engine import Exchange, ReplayResult
from plugins.ntp.exchange import exchange_times
from gateway.replay.report import PLAUSIBLE_T1_WINDOW_NS, format_text, measure_exchange, outcome, summary
from plugins.ntp.timestamps import unix_ns_to_ntp

TS = 1_714_564_800_000_000_000
RANDOM = bytes.fromhex("5a3c9e01d27f44b8")


def _exchange(transmit: bytes, *, t2=TS + 100_000, t3=TS + 110_000, recorded=None, next_frame=None):
    request = bytes([0x23, 0, 6, 0xEC]) + bytes(36) + transmit
    reply = (bytes([0x24, 10, 6, 0xEC]) + bytes(20) + transmit
             + unix_ns_to_ntp(t2).to_bytes(8, "big") + unix_ns_to_ntp(t3).to_bytes(8, "big"))
    return Exchange(request_number=3, port=123, guest="192.168.65.3:40000", request_ns=TS,
                    times=exchange_times(request, reply, TS, TS), reply_capture_ns=TS + 10_000,
                    recorded_reply_ns=recorded, next_frame_ns=next_frame)


def test_a_real_transmit_timestamp_is_t1_and_the_recorded_reply_is_t4():
    t1 = TS - 50_000  # the client stamped its request 50 us before the capture saw it
    m = measure_exchange(_exchange(unix_ns_to_ntp(t1).to_bytes(8, "big"), recorded=TS + 300_000,
                                   next_frame=TS + 200_000))
    assert (m["t1_source"], m["t4_source"]) == ("client transmit timestamp", "recorded reply")
    assert m["t1_ns"] == pytest.approx(t1, abs=1) and m["t4_ns"] == TS + 300_000
    # offset = ((T2-T1) + (T3-T4)) / 2 = ((150 us) + (-190 us)) / 2; delay = (350 us) - (10 us)
    assert m["offset_s"] == pytest.approx(-20e-6, abs=1e-9)
    assert m["delay_s"] == pytest.approx(340e-6, abs=1e-9)


@pytest.mark.parametrize("transmit", [RANDOM, bytes(8),
                                      unix_ns_to_ntp(TS + PLAUSIBLE_T1_WINDOW_NS + 10**9).to_bytes(8, "big")])
def test_a_transmit_timestamp_that_is_no_time_gives_way_to_the_capture_time(transmit):
    m = measure_exchange(_exchange(transmit, next_frame=TS + 200_000))
    assert m["t1_ns"] == TS and m["t1_source"].startswith("request capture time")
    assert (m["t4_ns"], m["t4_source"]) == (TS + 200_000, "next frame")


def test_without_later_frames_t4_is_the_replayed_reply():
    m = measure_exchange(_exchange(RANDOM))
    assert (m["t4_ns"], m["t4_source"]) == (TS + 10_000, "replayed reply")


def _result():
    result = ReplayResult(clock="recorded", upstream="embedded", frames_read=30, frames_from_guest=28,
                          frames_answered=25, skipped=Counter({"not from a guest (sent by the gateway)": 2}),
                          drops=Counter({"b: two": 2, "a: two": 2, "c: one": 1}), forwarded=25,
                          answered=25, flows_opened=25)
    result.exchanges = [_exchange(RANDOM) for _ in range(25)]
    result.output = [(TS, b"")] * 25
    return result


def test_outcome_orders_reasons_by_count_then_name_and_has_no_paths():
    o = outcome(_result())
    assert list(o["drops"]) == ["a: two", "b: two", "c: one"]
    assert o["frames_sent"] == 25 and o["ntp"] == {"forwarded": 25, "answered": 25, "exchanges": 25}
    assert not {"exchanges", "capture", "output", "clock"} & o.keys()


def test_summary_is_json_and_the_text_names_everything():
    report = summary(_result())
    assert json.loads(json.dumps(report)) == report
    text = format_text(report)
    for needle in ("frames read           30", "from a guest        28", "2 x not from a guest (sent by the gateway)",
                   "answered              25", "dropped                5", "2 x a: two",
                   "NTP              forwarded 25, answered 25", "offset = ((T2-T1)+(T3-T4))/2",
                   "... and 5 more (all of them with --json)"):
        assert needle in text, needle
