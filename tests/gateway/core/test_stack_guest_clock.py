"""The stack and the guest clock watcher: guests learned from their frames and leases, timestamp replies and
services' clock readings routed to the watcher, and nothing of it ever sent to a guest."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings, strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether

from gateway.app.assembly import build_stack
from gateway.app.config import Config, GatewayConfig, GuestClockConfig
from gateway.core import guest_clock as gc
from gateway.core.addresses import parse_ipv4, parse_mac
from gateway.core.drops import Drop
from gateway.core.guest_clock import GuestClockReading, GuestClockWatcher, GuestSeen
from gateway.core.service import Forward
from gateway.core.stack import Stack
from plugins.ntp.timestamps import unix_ns_to_ntp
from guest_frames import GATEWAY_IP, GATEWAY_MAC, GUEST_IP, GUEST_MAC, arp_request, ntp_request, to_gateway, \
    udp_to_gateway

S = 1_000_000_000
NOON = 1_796_126_400 * S  # 2026-12-01 12:00:00 UTC
LINK = "link-0"


def watching_stack() -> Stack:
    return build_stack(Config(guest_clock=GuestClockConfig(interval=10.0)))


def test_build_stack_attaches_a_watcher_only_when_asked():
    assert build_stack(Config()).guest_clock is None
    stack = watching_stack()
    assert isinstance(stack.guest_clock, GuestClockWatcher) and stack.guest_clock.interval == 10.0
    assert stack.services[123].report_guest_clock and stack.services[67].report_guest_clock
    assert not build_stack(Config()).services[123].report_guest_clock


def test_guests_are_learned_from_arp_and_ipv4_on_their_link():
    stack = watching_stack()
    stack.receive_frame(arp_request(), 1.0, LINK, NOON)
    (guest,) = stack.guest_clock.guests()
    assert (guest.guest_ip, guest.guest_mac, guest.link) == (GUEST_IP, GUEST_MAC, LINK)
    stack.receive_frame(to_gateway(ICMP(type=8) / b"x", src="192.168.65.7"), 2.0, "link-1", NOON)
    assert {(g.guest_ip, g.link) for g in stack.guest_clock.guests()} == {(GUEST_IP, LINK), ("192.168.65.7", "link-1")}
    # a source that is no guest host teaches nothing
    stack.receive_frame(to_gateway(ICMP(type=8) / b"x", src="192.168.65.255"), 3.0, LINK, NOON)
    assert len(stack.guest_clock.guests()) == 2


def test_a_timestamp_reply_goes_to_the_watcher_and_nothing_goes_back():
    stack = watching_stack()
    stack.receive_frame(arp_request(), 0.0, LINK, NOON)
    ((link, probe_frame),) = stack.guest_clock.on_timer(0.5, NOON + S // 2)
    probe = Ether(probe_frame)[ICMP]
    reply = to_gateway(ICMP(type=14, id=probe.id, seq=probe.seq, ts_ori=probe.ts_ori, ts_rx=probe.ts_ori,
                            ts_tx=probe.ts_ori))
    assert stack.receive_frame(reply, 0.5002, LINK, NOON + S // 2 + 200_000) == []
    assert stack.guest_clock.probes_answered == 1 and not stack.drops
    # the same reply again: the watcher counts it, the stack does not
    assert stack.receive_frame(reply, 0.5003, LINK, NOON + S // 2 + 300_000) == []
    assert stack.guest_clock.drops == {gc.DROP_DUPLICATE: 1} and not stack.drops


def test_without_a_watcher_a_timestamp_reply_is_dropped_and_a_timestamp_request_is_not_answered():
    stack = Stack(GatewayConfig())
    reply = to_gateway(ICMP(type=14, id=1, seq=1, ts_ori=1, ts_rx=2, ts_tx=3))
    request = to_gateway(ICMP(type=13, id=1, seq=1, ts_ori=1))
    assert stack.receive_frame(reply, 0.0) == [] and stack.receive_frame(request, 0.0) == []
    assert stack.drops == Counter({Drop.ICMP_TIMESTAMP_REPLY_UNWATCHED: 1, Drop.ICMP_NOT_ECHO_REQUEST: 1})
    watched = watching_stack()
    assert watched.receive_frame(request, 0.0, LINK, NOON) == []  # not answered when watching either
    assert watched.drops == Counter({Drop.ICMP_NOT_ECHO_REQUEST: 1})


def ntpdig_request(guest_wall_ns: int, sport: int = 40000) -> bytes:
    return udp_to_gateway(ntp_request(transmit=unix_ns_to_ntp(guest_wall_ns).to_bytes(8, "big")), sport=sport)


def test_the_time_service_reading_goes_to_the_watcher_never_to_the_caller():
    stack = watching_stack()
    # a guest 30 ms ahead, asking twice, 2 s apart; each request reaches the gateway 0.1 ms after it left
    for i in range(2):
        outputs = stack.receive_frame(ntpdig_request(NOON + i * 2 * S + 30_000_000), i * 2.0, LINK,
                                      NOON + i * 2 * S + 100_000)
        assert [type(o) for o in outputs] == [Forward]
    (offset,) = stack.guest_clock.take_offsets()
    assert offset.source == "ntp" and abs(offset.offset_s - 0.030) <= offset.error_s
    # chronyd's random bits make no reading
    stack.receive_frame(ntpdig_request(NOON - 1234 * S), 4.0, LINK, NOON + 4 * S)
    assert stack.guest_clock.take_offsets() == [] and stack.guest_clock.ntp_unused[gc.NTP_DISAGREE] == 1


def test_a_time_service_that_is_not_watching_returns_only_the_forward():
    stack = build_stack(Config())
    outputs = stack.receive_frame(ntpdig_request(NOON), 0.0, LINK, NOON)
    assert [type(o) for o in outputs] == [Forward]


class Reporter:
    """A service that returns what it is told to, beside a reply."""

    port, accepts_broadcast = 7, True

    def __init__(self):
        self.drops = Counter()
        self.returns = []

    def handle_datagram(self, source, local_ip, payload, now):
        return [b"ok", *self.returns]


def test_readings_and_sightings_are_taken_only_for_the_guest_that_asked():
    watcher = GuestClockWatcher(parse_mac(GATEWAY_MAC), parse_ipv4(GATEWAY_IP), interval=10)
    service = Reporter()
    stack = Stack(GatewayConfig(), [service], guest_clock=watcher)
    other = parse_mac("52:54:00:00:00:99")
    service.returns = [GuestSeen(other, parse_ipv4("192.168.65.50")),          # not the asker's MAC
                       GuestSeen(parse_mac(GUEST_MAC), parse_ipv4("10.0.0.1")),  # not a guest host
                       GuestSeen(parse_mac(GUEST_MAC), parse_ipv4("192.168.65.60"))]
    outputs = stack.receive_frame(udp_to_gateway(b"hi", dport=7), 0.0, LINK, NOON)
    assert len(outputs) == 1 and Ether(outputs[0])[UDP].load == b"ok"
    assert sorted(g.guest_ip for g in watcher.guests()) == [GUEST_IP, "192.168.65.60"]
    # with no watcher, what a service reports for it is discarded, never passed on
    plain = Stack(GatewayConfig(), [service])
    service.returns = [GuestClockReading(None, 0, 1), GuestSeen(parse_mac(GUEST_MAC), parse_ipv4(GUEST_IP))]
    assert len(plain.receive_frame(udp_to_gateway(b"hi", dport=7), 0.0)) == 1


def test_a_dhcp_lease_makes_the_guest_watched_at_its_new_address():
    stack = watching_stack()
    new_client = parse_mac("52:54:00:aa:bb:cc")

    def dhcp_frame(options):
        message = BOOTP(chaddr=new_client, xid=7) / DHCP(options=[*options, "end"])
        return bytes(Ether(src="52:54:00:aa:bb:cc", dst="ff:ff:ff:ff:ff:ff")
                     / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67) / message)

    (offer,) = stack.receive_frame(dhcp_frame([("message-type", "discover")]), 0.0, LINK, NOON)
    address = Ether(offer)[BOOTP].yiaddr
    assert stack.guest_clock.guests() == []  # no lease yet
    (ack,) = stack.receive_frame(dhcp_frame([("message-type", "request"), ("server_id", GATEWAY_IP),
                                             ("requested_addr", address)]), 1.0, LINK, NOON)
    (guest,) = stack.guest_clock.guests()
    assert (guest.guest_ip, guest.guest_mac) == (address, "52:54:00:aa:bb:cc")


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=40), code=st.integers(0, 255))
def test_arbitrary_timestamp_replies_through_the_stack_never_raise(body, code):
    stack = watching_stack()
    stack.receive_frame(arp_request(), 0.0, LINK, NOON)
    stack.guest_clock.on_timer(0.5, NOON + S // 2)
    frame = to_gateway(ICMP(type=14, code=code) / body)
    assert stack.receive_frame(frame, 0.6, LINK, NOON + 6 * S // 10) == []
    watcher = stack.guest_clock
    assert sum(watcher.drops.values()) + watcher.probes_answered + sum(stack.drops.values()) == 1
