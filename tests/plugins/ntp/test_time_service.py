"""The time service screens NTP both ways before anything reaches the upstream or the guest."""

import pytest
from guest_frames import ntp_request

from gateway.core.service import GuestAddress
from gateway.core.service import Forward
from plugins.ntp.time_service import TimeService

GUEST = GuestAddress(bytes.fromhex("525400123456"), bytes([192, 168, 65, 3]), 40000)
GW = bytes([192, 168, 65, 1])


def server_reply(size=48, mode=4):
    return bytes([(4 << 3) | mode]) + bytes(size - 1)


def test_client_request_is_forwarded_on_the_guests_flow():
    service = TimeService()
    (forward,) = service.handle_datagram(GUEST, GW, ntp_request(), now=5.0)
    assert isinstance(forward, Forward) and forward.port == 123 and forward.payload == ntp_request()
    assert forward.flow.guest == GUEST and forward.flow.local_ip == GW
    (again,) = service.handle_datagram(GUEST, GW, ntp_request(), now=6.0)
    assert again.flow is forward.flow


@pytest.mark.parametrize("payload, reason", [
    (ntp_request(size=47), "ntp: request shorter than 48 bytes"),
    (ntp_request(size=50), "ntp: request length not a multiple of 4"),
    (ntp_request(version=0), "ntp: version 0 (only 1-4 are answered)"),
    (ntp_request(version=5), "ntp: version 5 (only 1-4 are answered)"),
    *[(ntp_request(mode=m), f"ntp: mode {m} (only client requests, mode 3, are forwarded)") for m in (0, 1, 2, 4, 5, 6, 7)],
])
def test_requests_not_forwarded(payload, reason):
    service = TimeService()
    assert service.handle_datagram(GUEST, GW, payload, now=0.0) == []
    assert service.drops == {reason: 1} and len(service.flows) == 0


@pytest.mark.parametrize("size", [48, 68, 72])
def test_sizes_with_key_id_or_mac_are_forwarded(size):
    assert len(TimeService().handle_datagram(GUEST, GW, ntp_request(size=size), now=0.0)) == 1


def test_reply_is_passed_back_and_refreshes_the_flow():
    service = TimeService()
    (forward,) = service.handle_datagram(GUEST, GW, ntp_request(), now=0.0)
    assert service.handle_upstream(forward.flow.id, server_reply(), now=30.0) == server_reply()
    assert forward.flow.last_active == 30.0 and service.answered == 1


@pytest.mark.parametrize("reply, reason", [
    (server_reply(mode=3), "ntp: upstream reply is not an NTP server reply (mode 4)"),
    (server_reply(mode=7), "ntp: upstream reply is not an NTP server reply (mode 4)"),
    (b"\x24" * 20, "ntp: upstream reply is not an NTP server reply (mode 4)"),
    (server_reply(size=468), "ntp: upstream reply longer than the request (anti-amplification)"),
])
def test_upstream_replies_screened(reply, reason):
    service = TimeService()
    (forward,) = service.handle_datagram(GUEST, GW, ntp_request(), now=0.0)
    assert service.handle_upstream(forward.flow.id, reply, now=1.0) is None
    assert service.drops == {reason: 1}


def test_reply_for_an_unknown_or_expired_flow_is_dropped():
    service = TimeService()
    (forward,) = service.handle_datagram(GUEST, GW, ntp_request(), now=0.0)
    service.flows.expire(now=1000.0)
    assert service.handle_upstream(forward.flow.id, server_reply(), now=1000.0) is None
    assert service.handle_upstream(999, server_reply(), now=1000.0) is None
    assert service.drops == {"ntp: reply on no open flow": 2}


def test_with_report_guest_clock_a_request_also_states_the_guests_clock():
    from gateway.core.guest_clock import GuestClockReading, GuestClockReporter
    from plugins.ntp.timestamps import ERA_NS, unix_ns_to_ntp

    service = TimeService()
    assert isinstance(service, GuestClockReporter) and not service.report_guest_clock
    guest_ns = 1_796_126_400_123_456_789  # the guest's clock when it sent the request
    request = ntp_request(transmit=unix_ns_to_ntp(guest_ns).to_bytes(8, "big"))
    assert [type(o) for o in service.handle_datagram(GUEST, GW, request, now=1.0)] == [Forward]
    service.report_guest_clock = True
    forward, reading = service.handle_datagram(GUEST, GW, request, now=2.0)
    assert isinstance(forward, Forward) and forward.payload == request
    assert reading == GuestClockReading(GUEST, guest_ns, ERA_NS, "ntp")
    # a client that sends no time (transmit 0) states nothing
    assert [type(o) for o in service.handle_datagram(GUEST, GW, ntp_request(transmit=bytes(8)), now=3.0)] == [Forward]
