"""The sans-IO stack: answers checked byte for byte and against scapy's dissection; every drop has its reason."""

from collections import Counter

import pytest
from scapy.layers.inet import ICMP, IP, UDP, IPOption_RR
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from gateway.app.config import GatewayConfig
from gateway.core.drops import Drop
from gateway.core import stack as stack_module
from gateway.core.flows import Flow, FlowTable
from gateway.core.service import Forward, GuestAddress
from gateway.core.stack import Stack
from guest_frames import (GATEWAY_IP, GATEWAY_MAC, GUEST_IP, GUEST_MAC, arp_request, ping, to_gateway,
                          udp_to_gateway)


class EchoService:
    """A minimal UdpService: sends every payload back reversed."""

    def __init__(self, port=7, accepts_broadcast=False):
        self.port = port
        self.accepts_broadcast = accepts_broadcast
        self.drops = Counter()
        self.seen = []

    def handle_datagram(self, source, local_ip, payload, now):
        self.seen.append((source, local_ip, payload, now))
        return [payload[::-1]]


@pytest.fixture
def stack():
    return Stack(GatewayConfig(host_alias_ip="192.168.65.2"), [EchoService()])


def only(outputs):
    assert len(outputs) == 1, outputs
    return outputs[0]


def test_arp_reply_golden_bytes(stack):
    reply = only(stack.receive_frame(arp_request(), now=0.0))
    assert reply.hex() == (
        "525400123456" "f616 36bc f9c6".replace(" ", "") + "0806"
        "0001" "0800" "06" "04" "0002" "f61636bcf9c6" "c0a84101" "525400123456" "c0a84103"
        + "00" * 18)
    assert stack.frames_sent == 1


def test_arp_reply_agrees_with_scapy(stack):
    reply = Ether(only(stack.receive_frame(arp_request(target="192.168.65.2"), now=0.0)))
    assert reply.dst == GUEST_MAC and reply.src == GATEWAY_MAC
    assert reply[ARP].op == 2 and reply[ARP].hwsrc == GATEWAY_MAC and reply[ARP].psrc == "192.168.65.2"
    assert reply[ARP].hwdst == GUEST_MAC and reply[ARP].pdst == GUEST_IP


@pytest.mark.parametrize("frame, reason", [
    (arp_request(target="192.168.65.9"), Drop.ARP_NOT_FOR_US),
    (bytes(Ether(dst=GATEWAY_MAC, src=GUEST_MAC) / ARP(op=2, hwsrc=GUEST_MAC, psrc=GUEST_IP, pdst=GATEWAY_IP)),
     Drop.ARP_NOT_REQUEST),
    # a request whose ar$sha is another host's: answering would send that host a frame it did not ask for
    (bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=GUEST_MAC) / ARP(op=1, hwsrc="52:54:00:aa:bb:cc", psrc=GUEST_IP,
                                                             pdst=GATEWAY_IP)), Drop.ARP_SENDER_NOT_SOURCE),
    (bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=GUEST_MAC) / ARP(op=1, ptype=0x86DD, pdst=GATEWAY_IP)),
     Drop.ARP_NOT_ETHERNET_IPV4),
    (arp_request()[:14 + 27], Drop.TRUNCATED_ARP),
    (bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=GUEST_MAC) / ARP(op=1, hwsrc="ff:ff:ff:ff:ff:ff", pdst=GATEWAY_IP)),
     Drop.ARP_BAD_SENDER),
])
def test_arp_drops(stack, frame, reason):
    assert stack.receive_frame(frame, now=0.0) == []
    assert stack.drops == {reason: 1}


def test_ping_reply_agrees_with_scapy(stack):
    reply = Ether(only(stack.receive_frame(ping(b"x" * 100, ident=0xBEEF, seq=9), now=0.0)))
    assert reply.dst == GUEST_MAC
    assert reply[IP].src == GATEWAY_IP and reply[IP].dst == GUEST_IP and reply[IP].proto == 1
    assert reply[ICMP].type == 0 and reply[ICMP].id == 0xBEEF and reply[ICMP].seq == 9
    assert reply[ICMP].load == b"x" * 100
    # scapy recomputes both checksums from scratch: they must equal ours
    rebuilt = Ether(bytes(reply))
    del rebuilt[IP].chksum, rebuilt[ICMP].chksum
    assert Ether(bytes(rebuilt))[IP].chksum == reply[IP].chksum
    assert Ether(bytes(rebuilt))[ICMP].chksum == reply[ICMP].chksum


def test_ping_with_ip_options_is_answered(stack):
    frame = to_gateway(ICMP(type=8, id=1, seq=1) / b"opt", options=[IPOption_RR()])
    reply = Ether(only(stack.receive_frame(frame, now=0.0)))
    assert reply[ICMP].type == 0 and reply[ICMP].load == b"opt"


def test_udp_service_reply_agrees_with_scapy(stack):
    reply = Ether(only(stack.receive_frame(udp_to_gateway(b"hello", dport=7, sport=5555), now=12.5)))
    assert reply[IP].src == GATEWAY_IP and reply[IP].dst == GUEST_IP
    assert reply[UDP].sport == 7 and reply[UDP].dport == 5555 and reply[UDP].load == b"olleh"
    rebuilt = Ether(bytes(reply))
    del rebuilt[UDP].chksum, rebuilt[IP].chksum
    rebuilt = Ether(bytes(rebuilt))
    assert (rebuilt[IP].chksum, rebuilt[UDP].chksum) == (reply[IP].chksum, reply[UDP].chksum)
    service = stack.services[7]
    source, local_ip, payload, now = service.seen[0]
    assert (source.ip, source.port, source.mac.hex(":")) == (bytes([192, 168, 65, 3]), 5555, GUEST_MAC)
    assert now == 12.5


def test_udp_to_host_alias_is_answered_from_the_alias(stack):
    reply = Ether(only(stack.receive_frame(udp_to_gateway(b"hi", dport=7, dst="192.168.65.2"), now=0.0)))
    assert reply[IP].src == "192.168.65.2"


def test_udp_zero_checksum_means_none(stack):
    frame = bytearray(udp_to_gateway(b"abc", dport=7))
    frame[14 + 20 + 6:14 + 20 + 8] = b"\0\0"
    assert len(stack.receive_frame(bytes(frame), now=0.0)) == 1


def test_unbound_port_gets_port_unreachable_quoting_the_datagram(stack):
    request = udp_to_gateway(b"dns?", dport=53, sport=4444)
    reply = Ether(only(stack.receive_frame(request, now=0.0)))
    assert reply[ICMP].type == 3 and reply[ICMP].code == 3
    quoted = bytes(reply[ICMP].payload)
    assert quoted == request[14:14 + 20 + 8]
    assert stack.drops == {Drop.PORT_UNREACHABLE: 1}


def test_unbound_port_silent_when_configured():
    stack = Stack(GatewayConfig(unbound_udp="drop"))
    assert stack.receive_frame(udp_to_gateway(b"x", dport=53), now=0.0) == []
    assert stack.drops == {Drop.PORT_UNREACHABLE: 1}


def test_broadcast_reaches_only_services_that_take_it():
    takes = EchoService(port=67, accepts_broadcast=True)
    stack = Stack(GatewayConfig(), [takes, EchoService(port=7)])
    dhcp_like = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=GUEST_MAC) / IP(src="0.0.0.0", dst="255.255.255.255")
                      / UDP(sport=68, dport=67) / b"discover")
    reply = Ether(only(stack.receive_frame(dhcp_like, now=0.0)))
    assert reply[IP].src == GATEWAY_IP
    echo_broadcast = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=GUEST_MAC)
                           / IP(src=GUEST_IP, dst="192.168.65.255") / UDP(sport=1, dport=7) / b"x")
    assert stack.receive_frame(echo_broadcast, now=0.0) == []
    assert stack.drops == {Drop.BROADCAST_NOT_ACCEPTED: 1}


def bad_ip_checksum():
    frame = bytearray(ping())
    frame[24] ^= 0xFF
    return bytes(frame)


def bad_udp_checksum():
    frame = bytearray(udp_to_gateway(b"payload", dport=7))
    frame[-1] ^= 0x01
    return bytes(frame)


def bad_icmp_checksum():
    frame = bytearray(ping())
    frame[-1] ^= 0x01
    return bytes(frame)


@pytest.mark.parametrize("frame, reason", [
    (b"\x00" * 13, Drop.TRUNCATED_ETHERNET),
    (bytes(Ether(dst="52:54:00:99:99:99", src=GUEST_MAC) / IP(src=GUEST_IP, dst=GATEWAY_IP) / ICMP()), Drop.NOT_FOR_US),
    (bytes(Ether(dst="01:00:5e:00:00:fb", src=GUEST_MAC) / IP(src=GUEST_IP, dst="224.0.0.251") / UDP()), Drop.MULTICAST_MAC),
    (bytes(Ether(dst=GATEWAY_MAC, src="01:00:00:00:00:01") / IP(src=GUEST_IP, dst=GATEWAY_IP) / ICMP()), Drop.BAD_SOURCE_MAC),
    (bytes(Ether(dst=GATEWAY_MAC, src=GUEST_MAC) / Dot1Q(vlan=5) / IP(src=GUEST_IP, dst=GATEWAY_IP) / ICMP()), Drop.VLAN_TAGGED),
    (bytes(Ether(dst=GATEWAY_MAC, src=GUEST_MAC) / IPv6()), Drop.IPV6),
    (bytes(Ether(dst=GATEWAY_MAC, src=GUEST_MAC, type=0x0030) / (b"\0" * 48)), Drop.LLC_FRAME),
    (bytes(Ether(dst=GATEWAY_MAC, src=GUEST_MAC, type=0x88CC) / (b"\0" * 48)), Drop.UNKNOWN_ETHERTYPE),
    (ping()[:14 + 19], Drop.TRUNCATED_IPV4),
    (to_gateway(ICMP(), version=6), Drop.BAD_IP_VERSION),
    (to_gateway(ICMP(), ihl=4), Drop.BAD_IHL),
    (to_gateway(ICMP(), len=2000), Drop.BAD_TOTAL_LENGTH),
    (to_gateway(ICMP(), len=10), Drop.BAD_TOTAL_LENGTH),
    (bad_ip_checksum(), Drop.BAD_IP_CHECKSUM),
    (to_gateway(ICMP() / (b"x" * 40), flags="MF"), Drop.FRAGMENT),
    (to_gateway(ICMP() / (b"x" * 40), frag=3), Drop.FRAGMENT),
    (to_gateway(ICMP(), dst="192.168.65.77"), Drop.IP_NOT_FOR_US),
    (to_gateway(ICMP(), src="203.0.113.9"), Drop.BAD_SOURCE_IP),
    (to_gateway(ICMP(), src=GATEWAY_IP), Drop.BAD_SOURCE_IP),
    (to_gateway(ICMP(), src="0.0.0.0"), Drop.BAD_SOURCE_IP),
    (to_gateway(ICMP(), src="192.168.65.0"), Drop.BAD_SOURCE_IP),    # host part 0: RFC 1122 §3.2.1.3
    (to_gateway(ICMP(), src="192.168.65.255"), Drop.BAD_SOURCE_IP),  # host part -1
    (to_gateway(ICMP(), src="192.168.65.2"), Drop.BAD_SOURCE_IP),    # the host alias, a gateway address
    (to_gateway(b"\x00" * 20, proto=6), Drop.TCP_NOT_SERVED),
    (to_gateway(b"\x00" * 20, proto=47), Drop.UNKNOWN_PROTOCOL),
    (to_gateway(b"\x08\x00", proto=1), Drop.TRUNCATED_ICMP),
    (bad_icmp_checksum(), Drop.BAD_ICMP_CHECKSUM),
    (to_gateway(ICMP(type=13)), Drop.ICMP_NOT_ECHO_REQUEST),
    (to_gateway(b"\x00\x07\x00", proto=17), Drop.TRUNCATED_UDP),
    (to_gateway(UDP(dport=7, len=60) / b"abc"), Drop.BAD_UDP_LENGTH),
    (to_gateway(UDP(dport=7, len=4) / b"abc"), Drop.BAD_UDP_LENGTH),
    (bad_udp_checksum(), Drop.BAD_UDP_CHECKSUM),
])
def test_drops_are_counted_by_reason(stack, frame, reason):
    assert stack.receive_frame(frame, now=0.0) == []
    assert stack.drops == {reason: 1}
    assert stack.frames_received == 1 and stack.frames_sent == 0


def test_frame_with_ethernet_padding_is_accepted(stack):
    frame = udp_to_gateway(b"a", dport=7) + b"\0" * 20  # padded beyond the IP total length
    assert len(stack.receive_frame(frame, now=0.0)) == 1


def test_reply_over_mtu_is_dropped():
    class Bloat(EchoService):
        def handle_datagram(self, source, local_ip, payload, now):
            return [b"z" * 1473]  # 20 + 8 + 1473 > 1500
    stack = Stack(GatewayConfig(), [Bloat(port=9)])
    assert stack.receive_frame(udp_to_gateway(b"x", dport=9), now=0.0) == []
    assert stack.drops == {Drop.REPLY_OVER_MTU: 1}


def test_a_forwarding_services_forward_passes_through_and_anything_else_is_counted():
    flow = Flow(1, GuestAddress(b"\x02" * 6, bytes(4), 1), b"", 0.0)
    request = Forward(123, flow, b"x" * 48)

    class Forwarding(EchoService):
        flows = FlowTable()

        def handle_datagram(self, source, local_ip, payload, now):
            return [request, object()]

        def handle_upstream(self, flow_id, payload, now):
            return None

    class Plain(EchoService):
        def handle_datagram(self, source, local_ip, payload, now):
            return [request]  # a Forward from a service that does not forward: nothing would carry it

    stack = Stack(GatewayConfig(), [Forwarding(port=123), Plain(port=7)])
    assert stack.forwarders.keys() == {123}
    assert stack.receive_frame(udp_to_gateway(b"x" * 48, dport=123), now=0.0) == [request]
    assert stack.receive_frame(udp_to_gateway(b"x", dport=7), now=0.0) == []
    assert stack.drops == {Drop.SERVICE_BAD_OUTPUT: 2}


def test_binding_twice_or_a_non_service_is_refused():
    stack = Stack(GatewayConfig(), [EchoService(port=7)])
    with pytest.raises(ValueError, match="already bound"):
        stack.bind(EchoService(port=7))
    with pytest.raises(TypeError, match="not a UdpService"):
        stack.bind(object())


# -- RFC 1122 host rules ----------------------------------------------------------------------------

def in_broadcast_frame(l4, *, src: str = GUEST_IP, dst: str = GATEWAY_IP) -> bytes:
    return bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=GUEST_MAC) / IP(src=src, dst=dst) / l4)


@pytest.mark.parametrize("frame", [
    in_broadcast_frame(ICMP(type=8, id=1, seq=1) / b"ping"),               # echo to the gateway
    in_broadcast_frame(ICMP(type=8, id=1, seq=1), dst="192.168.65.2"),     # echo to the host alias
    in_broadcast_frame(UDP(sport=5555, dport=7) / b"hello"),               # a bound service
    in_broadcast_frame(UDP(sport=5555, dport=53) / b"dns?"),               # an unbound port: no ICMP error either
])
def test_unicast_ip_in_a_link_layer_broadcast_is_discarded_rfc1122_3_3_6(stack, frame):
    """RFC 1122 §3.3.6: "A host SHOULD silently discard a datagram that is received via a
    link-layer broadcast ... but does not specify an IP multicast or broadcast destination address"."""
    assert stack.receive_frame(frame, now=0.0) == []
    assert stack.drops == {Drop.UNICAST_IN_LINK_BROADCAST: 1}
    assert stack.services[7].seen == []


def test_ip_broadcast_in_a_link_layer_broadcast_still_reaches_a_broadcast_service():
    takes = EchoService(port=67, accepts_broadcast=True)
    stack = Stack(GatewayConfig(), [takes])
    for dst in ("255.255.255.255", "192.168.65.255"):
        assert len(stack.receive_frame(in_broadcast_frame(UDP(sport=68, dport=67) / b"x", dst=dst), now=0.0)) == 1
    assert not stack.drops


def test_arp_in_a_link_layer_broadcast_is_still_answered(stack):
    assert len(stack.receive_frame(arp_request(), now=0.0)) == 1  # ARP requests are broadcast by nature
    assert not stack.drops


def test_the_network_address_is_no_source_on_any_prefix():
    """RFC 1122 §3.2.1.3: no 0 or -1 host part. On a /20 the network address is 10.1.0.0;
    10.1.0.255 and 10.1.1.0 are ordinary hosts there."""
    stack = Stack(GatewayConfig(gateway_ip="10.1.2.1", prefix_len=20))
    def ask(src):
        return bytes(Ether(dst=GATEWAY_MAC, src=GUEST_MAC) / IP(src=src, dst="10.1.2.1") / ICMP(type=8))
    assert stack.receive_frame(ask("10.1.0.0"), now=0.0) == []
    assert stack.receive_frame(ask("10.1.15.255"), now=0.0) == []
    assert stack.drops == {Drop.BAD_SOURCE_IP: 2}
    assert len(stack.receive_frame(ask("10.1.0.255"), now=0.0)) == 1
    assert len(stack.receive_frame(ask("10.1.1.0"), now=0.0)) == 1


@pytest.mark.parametrize("frame, reason", [
    # a datagram destined to an IP broadcast address
    (bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=GUEST_MAC) / IP(src=GUEST_IP, dst="255.255.255.255")
           / UDP(sport=1, dport=53)), Drop.BROADCAST_NOT_ACCEPTED),
    (bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=GUEST_MAC) / IP(src=GUEST_IP, dst="192.168.65.255")
           / UDP(sport=1, dport=53)), Drop.BROADCAST_NOT_ACCEPTED),
    # an IP broadcast in a unicast frame is an IP broadcast all the same
    (bytes(Ether(dst=GATEWAY_MAC, src=GUEST_MAC) / IP(src=GUEST_IP, dst="255.255.255.255")
           / UDP(sport=1, dport=53)), Drop.BROADCAST_NOT_ACCEPTED),
    # a datagram sent as a link-layer broadcast
    (in_broadcast_frame(UDP(sport=1, dport=53)), Drop.UNICAST_IN_LINK_BROADCAST),
    # a source address that does not define a single host
    (bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=GUEST_MAC) / IP(src="0.0.0.0", dst="255.255.255.255")
           / UDP(sport=68, dport=53)), Drop.BROADCAST_NOT_ACCEPTED),
    (udp_to_gateway(b"x", dport=53, src="0.0.0.0"), Drop.BAD_SOURCE_IP),
    (udp_to_gateway(b"x", dport=53, src="192.168.65.0"), Drop.BAD_SOURCE_IP),
    (udp_to_gateway(b"x", dport=53, src="192.168.65.255"), Drop.BAD_SOURCE_IP),
    (udp_to_gateway(b"x", dport=53, src="127.0.0.1"), Drop.BAD_SOURCE_IP),
    (udp_to_gateway(b"x", dport=53, src="224.0.0.1"), Drop.BAD_SOURCE_IP),
    (udp_to_gateway(b"x", dport=53, src="240.0.0.1"), Drop.BAD_SOURCE_IP),
    # a non-initial fragment
    (udp_to_gateway(b"x" * 16, dport=53, frag=2), Drop.FRAGMENT),
])
def test_no_icmp_error_answers_what_rfc1122_3_2_2_forbids(stack, frame, reason):
    assert stack.receive_frame(frame, now=0.0) == []
    assert stack.drops == {reason: 1}


def test_the_icmp_error_guard_itself_refuses_every_forbidden_case(stack):
    """The check at the one place an ICMP error is made, independent of the filters before it."""
    unicast = udp_to_gateway(b"x", dport=53)
    broadcast_frame = in_broadcast_frame(UDP(sport=1, dport=53))
    guest = bytes([192, 168, 65, 3])
    assert stack._may_send_icmp_error(unicast, guest, broadcast=False)
    assert not stack._may_send_icmp_error(broadcast_frame, guest, broadcast=False)
    assert not stack._may_send_icmp_error(unicast, guest, broadcast=True)
    for source in ("0.0.0.0", "192.168.65.0", "192.168.65.255", "192.168.65.1", "127.0.0.1", "224.0.0.1",
                   "240.0.0.1", "255.255.255.255", "10.0.0.1"):
        assert not stack._may_send_icmp_error(unicast, bytes(map(int, source.split("."))), broadcast=False), source


# -- the MTU on every reply ---------------------------------------------------------------------------

def test_an_echo_request_larger_than_the_mtu_gets_no_oversized_reply(stack):
    jumbo = ping(b"j" * (9028 - 14 - 20 - 8))  # a 9028-byte frame, MTU 1500
    assert len(jumbo) == 9028
    assert stack.receive_frame(jumbo, now=0.0) == []
    assert stack.drops == {Drop.REPLY_OVER_MTU: 1}
    assert stack.frames_sent == 0


@pytest.mark.parametrize("mtu", [576, 1500, 9000])
def test_an_echo_reply_up_to_the_mtu_is_sent_and_one_byte_more_is_not(mtu):
    stack = Stack(GatewayConfig(mtu=mtu))
    largest = ping(b"m" * (mtu - 20 - 8))
    reply = only(stack.receive_frame(largest, now=0.0))
    assert len(reply) == 14 + mtu
    assert stack.receive_frame(ping(b"m" * (mtu - 20 - 8 + 1)), now=0.0) == []
    assert stack.drops == {Drop.REPLY_OVER_MTU: 1} and stack.frames_sent == 1


def test_a_udp_echo_larger_than_the_mtu_is_dropped_not_sent(stack):
    assert stack.receive_frame(udp_to_gateway(b"u" * 1473, dport=7), now=0.0) == []  # 20 + 8 + 1473 > 1500
    assert stack.drops == {Drop.REPLY_OVER_MTU: 1} and stack.frames_sent == 0
    assert len(only(stack.receive_frame(udp_to_gateway(b"u" * 1472, dport=7), now=0.0))) == 1514


# -- ICMP error rate limit (RFC 1812 §4.3.2.8) ------------------------------------------------------------

def test_port_unreachables_are_rate_limited_by_a_token_bucket(stack):
    ICMP_ERROR_BURST = stack_module.ICMP_ERROR_BURST
    assert (stack_module.ICMP_ERROR_RATE, ICMP_ERROR_BURST) == (100.0, 100)
    closed = udp_to_gateway(b"?", dport=53)
    sent = sum(len(stack.receive_frame(closed, now=5.0)) for _ in range(250))
    assert sent == ICMP_ERROR_BURST
    assert stack.drops == {Drop.PORT_UNREACHABLE: 100, Drop.ICMP_ERROR_RATE_LIMITED: 150}
    assert stack.frames_sent == 100
    assert stack.receive_frame(closed, now=5.004) == []             # 0.4 of a token
    assert len(stack.receive_frame(closed, now=5.015)) == 1         # 1.5 tokens: one token per 10 ms
    assert stack.receive_frame(closed, now=5.015) == []
    assert sum(len(stack.receive_frame(closed, now=7.0)) for _ in range(250)) == ICMP_ERROR_BURST  # full again
    # echo replies and services are not limited
    assert all(len(stack.receive_frame(ping(), now=7.0)) == 1 for _ in range(10))
    assert all(len(stack.receive_frame(udp_to_gateway(b"a", dport=7), now=7.0)) == 1 for _ in range(10))


def test_token_bucket_is_sans_io_and_survives_a_clock_step_back():
    TokenBucket = stack_module.TokenBucket
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(100.5)                     # 0.5 s * 2/s = one token
    assert not bucket.take(100.5)
    assert not bucket.take(50.0)                  # stepped back: no refill, no error
    assert not bucket.take(50.25)                 # half a token since the step
    assert bucket.take(50.5)
    assert [bucket.take(1000.0) for _ in range(4)] == [True, True, True, False]  # capped at the burst
    with pytest.raises(ValueError):
        TokenBucket(rate=0.0, burst=1)
    with pytest.raises(ValueError):
        TokenBucket(rate=1.0, burst=0)
