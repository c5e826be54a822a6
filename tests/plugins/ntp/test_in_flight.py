"""Each guest may have at most `max_in_flight` requests awaiting the upstream; replies and time free them."""

import pytest
from guest_frames import ntp_request

from gateway.app.assembly import assemble
from gateway.app.config import Config
from gateway.core.config import ConfigError
from gateway.core.service import GuestAddress
from plugins.ntp.in_flight import DEFAULT_LIMIT, InFlight
from plugins.ntp.time_service import TOO_MANY_IN_FLIGHT, TimeService

GW = bytes([192, 168, 65, 1])
FLOODER = [GuestAddress(bytes.fromhex("525400000009"), bytes([192, 168, 65, 9]), port) for port in range(40000, 40064)]
POLITE = GuestAddress(bytes.fromhex("525400000003"), bytes([192, 168, 65, 3]), 41000)


def reply():
    return bytes([0x24]) + bytes(47)


def test_a_flooding_guest_gets_no_more_than_the_cap_outstanding_whatever_its_ports():
    service = TimeService(in_flight=InFlight(8))
    forwarded = [out for i in range(200) for out in service.handle_datagram(FLOODER[i % 64], GW, ntp_request(), 1.0)]
    assert len(forwarded) == 8
    assert service.drops == {TOO_MANY_IN_FLIGHT: 192}
    # another guest is not affected
    assert len(service.handle_datagram(POLITE, GW, ntp_request(), 1.0)) == 1


def test_replies_free_the_guests_places():
    service = TimeService(in_flight=InFlight(2))
    first, second = (service.handle_datagram(FLOODER[i], GW, ntp_request(), 1.0)[0] for i in range(2))
    assert service.handle_datagram(FLOODER[2], GW, ntp_request(), 1.0) == []
    assert service.handle_upstream(first.flow.id, reply(), 1.001) is not None
    assert len(service.handle_datagram(FLOODER[3], GW, ntp_request(), 1.002)) == 1
    assert service.handle_datagram(FLOODER[4], GW, ntp_request(), 1.003) == []


def test_a_request_the_gateway_could_not_send_gives_its_place_back_at_once():
    service = TimeService(in_flight=InFlight(2))
    first, second = (service.handle_datagram(POLITE, GW, ntp_request(), 1.0)[0] for _ in range(2))
    assert service.handle_datagram(POLITE, GW, ntp_request(), 1.0) == []  # at the cap
    service.not_forwarded(second)  # no upstream yet, say
    assert len(service.handle_datagram(POLITE, GW, ntp_request(), 1.0)) == 1
    assert service.in_flight.outstanding(POLITE.mac + POLITE.ip) == 2


def test_a_request_never_answered_stops_counting_after_the_timeout():
    cap = InFlight(2, timeout=1.0)
    guest = b"guest"
    assert cap.admit(guest, 10.0) and cap.admit(guest, 10.5)
    assert not cap.admit(guest, 10.9)
    assert cap.admit(guest, 11.0)  # the request of 10.0 is a second old: lost, no longer counted
    assert cap.outstanding(guest) == 2


def test_a_real_clients_exchange_never_meets_the_default_cap():
    """One request, its reply, the next: ntpdig, chronyd, timesyncd, busybox; a burst of 8 too."""
    service = assemble(Config()).stack.services[123]
    assert service.in_flight is not None and service.in_flight.limit == DEFAULT_LIMIT == 8
    now = 0.0
    for burst in range(10):
        flows = [service.handle_datagram(FLOODER[i], GW, ntp_request(), now)[0].flow for i in range(8)]
        for flow in flows:
            assert service.handle_upstream(flow.id, reply(), now + 0.001) is not None
        now += 2.0
    assert not service.drops


def test_tracked_guests_are_bounded():
    cap = InFlight(1, max_guests=100)
    for n in range(1000):
        cap.admit(n.to_bytes(4, "big"), 0.0)
    assert len(cap) == 100


def test_the_cap_is_set_and_checked_in_the_ntp_table():
    assert assemble(Config().replace(ntp={"max_in_flight": 0})).stack.services[123].in_flight is None
    assert assemble(Config().replace(ntp={"max_in_flight": 4})).stack.services[123].in_flight.limit == 4
    with pytest.raises(ConfigError, match="max_in_flight"):
        Config().replace(ntp={"max_in_flight": -1})
