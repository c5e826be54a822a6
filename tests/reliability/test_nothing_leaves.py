"""§4 of the campaign, short: the sealed gateway sends nothing off the machine while a guest sprays.

The full 30 s version is `python -m bench.reliability nothing-leaves`. A control
run with a remote upstream (guest NTP meant to leave) shows that the capture and
the socket audit both see traffic that does leave.
"""

import shutil

import pytest
from realpeers import root_skip_reason

from bench.reliability import nothing_leaves

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _needs_root_and_tcpdump():
    """A skip here fails under CI (tests/realpeers/required.py): these are real-peer tests."""
    reason = root_skip_reason() or (None if shutil.which("tcpdump") else "tcpdump is missing (apt-get install tcpdump)")
    if reason:
        pytest.skip(reason)


def test_a_spraying_guest_gets_nothing_off_the_machine():
    result = nothing_leaves.run(seconds=2.0, destinations=10_000)
    guest = result["guest"]
    assert guest["sent"]["udp"] >= 10_000 and guest["sent"]["tcp"] >= 10_000 and guest["sent"]["icmp"] >= 10_000
    assert result["veth_packets"] == 0, result["veth_first_packets"]
    assert result["sockets_off_loopback"] == [], result["gateway_sockets"]
    assert any(s.startswith("udp 127.0.0.1:") for s in result["gateway_sockets"])  # the responder was audited
    assert guest["ntp_answered"] >= 0.9 * guest["ntp_sent"] > 0, guest  # while flooded: see the flood item
    assert result["gateway_exit"] == 0 and result["holds"]
    assert "watching guest clocks" in result["gateway_ready_line"]  # its probes stayed on the guest's link too


def test_the_control_run_sees_what_does_leave():
    """With a remote upstream guest NTP crosses the veth: both checks must say so."""
    result = nothing_leaves.run(seconds=0.5, destinations=500, control=True)
    assert any("198.51.100.2.123" in line for line in result["veth_first_packets"]), result["veth_first_packets"]
    assert any("198.51.100.2:123" in s for s in result["sockets_off_loopback"]), result["gateway_sockets"]
    assert not result["holds"]
