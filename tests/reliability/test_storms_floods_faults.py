"""§2 and §3 of the campaign, short: the figures' full versions are `python -m bench.reliability ITEM`.

These check what must hold whatever the machine's load (the gateway alive, bounded,
listening, answering again); the delay targets are the benches' (docs/reliability.md).
"""

import pytest
from realpeers import requires_clients

from bench.reliability import faults, flood, storm

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", storm.TRANSPORTS)
def test_a_connection_storm_neither_wedges_the_listener_nor_starves_the_attached_guest(kind):
    # loopback TCP: a connect that meets a full accept queue waits for the kernel's 1 s SYN
    # retransmit, so a smaller storm keeps the short test short (the bench runs 6,000 on each)
    result = storm.run_on(kind, seconds=2.0, storm=600 if kind == "qemu-socket" else 1500, max_guests=16)
    assert result["connect_never_through"] == 0, result
    assert result["storm_still_open_at_end"] <= 16  # the polling guest holds one of the 16
    assert result["gateway_fds"]["peak"] <= result["gateway_fds"]["idle"] + 16 + 8, result["gateway_fds"]
    assert result["attached_guest_during"]["answered_ratio"] >= 0.95, result["attached_guest_during"]
    assert result["new_guest_first_answer_s"] is not None and result["new_guest_first_answer_s"] <= 2
    assert result["refusal_log_line_count"] == 1, result["refusal_log_lines"]
    assert result["gateway_rss_kib"] <= 40 * 1024 and result["gateway_exit"] == 0


def test_a_garbage_flood_over_the_stream_leaves_the_gateway_up_bounded_and_answering():
    result = flood.flood_stream(2.0)
    assert result["gateway_alive"] and result["gateway_exit"] == 0
    assert result["gateway_peak_rss_kib"] <= 40 * 1024
    assert result["offered"]["frames_sent"] > 10_000
    assert result["polite"]["answered_ratio"] >= 0.9, result["polite"]


@pytest.mark.clients
@requires_clients("chronyd")
def test_the_upstream_chronyd_killed_and_restarted():
    result = faults.upstream_restart(seconds=1.0)
    assert result["gateway_alive"] and result["gateway_exit"] == 0
    assert "upstream:" in result["gateway_summary"]  # the unanswered requests were counted
    assert result["answered_again_after_s"] is not None and result["answered_again_after_s"] <= 1.0, result


def test_stopped_and_continued_the_gateway_serves_again_at_once():
    result = faults.stop_continue(seconds=2.0)
    assert result["gateway_alive"] and result["gateway_exit"] == 0 and not result["guest_error"]
    assert result["answered_again_after_s"] is not None and result["answered_again_after_s"] <= 1.0, result


def test_an_ntp_flood_is_refused_as_the_rate_limit_says():
    """[ntp] ratelimit through the real CLI and a flooding guest: the refusals are the settings'."""
    from bench.reliability import ntp_flood

    result = ntp_flood._one(2.0, limited=True)
    assert result["gateway_exit"] == 0 and result["flooder_requests_seen"] > 1000, result
    assert abs(result["refused_by_limit"] - result["expected_refused"]) <= 0.01 * result["expected_refused"], result
