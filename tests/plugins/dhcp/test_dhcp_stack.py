"""DHCP end to end through gateway.core.stack.Stack, and the stack's guarantees for a service's `UdpReply`.

Frames are crafted with scapy as a DHCP client sends them: from 0.0.0.0:68 to
255.255.255.255:67 at the broadcast MAC; answers are checked by scapy's dissection
(checksums recomputed by scapy must equal ours).
"""

import ipaddress
from collections import Counter

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from gateway.app.config import GatewayConfig
from gateway.core.drops import Drop
from gateway.core.service import UdpReply
from gateway.core.stack import Stack
from plugins.dhcp.drops import DhcpDrop
from plugins.dhcp.service import DhcpService

GATEWAY_MAC = "f6:16:36:bc:f9:c6"
GATEWAY_IP = "192.168.65.1"
CLIENT_MAC = "52:54:00:12:34:56"
CHADDR = bytes.fromhex(CLIENT_MAC.replace(":", ""))


def client_frame(options, *, src="0.0.0.0", dst="255.255.255.255", dst_mac="ff:ff:ff:ff:ff:ff", **bootp) -> bytes:
    return bytes(Ether(src=CLIENT_MAC, dst=dst_mac) / IP(src=src, dst=dst) / UDP(sport=68, dport=67)
                 / BOOTP(chaddr=CHADDR, xid=0x5EED, **bootp) / DHCP(options=[*options, "end"]))


def assert_checksums_are_right(frame: Ether) -> None:
    ip_checksum, udp_checksum = frame[IP].chksum, frame[UDP].chksum
    del frame[IP].chksum, frame[UDP].chksum
    rebuilt = Ether(bytes(frame))
    assert (rebuilt[IP].chksum, rebuilt[UDP].chksum) == (ip_checksum, udp_checksum)


def dhcp_options(frame: Ether) -> dict:
    return {o[0]: o[1] for o in frame[DHCP].options if isinstance(o, tuple)}


@pytest.fixture
def stack():
    return Stack(GatewayConfig(), [DhcpService(GatewayConfig())])


def only(outputs) -> Ether:
    assert len(outputs) == 1, outputs
    assert type(outputs[0]) is bytes
    return Ether(outputs[0])


def test_discover_request_renew_through_the_stack(stack):
    offer = only(stack.receive_frame(client_frame([("message-type", "discover"), ("param_req_list", [1, 3, 42])],
                                                  flags=0x8000), now=0.0))
    # broadcast bit set: the OFFER is broadcast, from the gateway, port 67 -> 68
    assert (offer.src, offer.dst) == (GATEWAY_MAC, "ff:ff:ff:ff:ff:ff")
    assert (offer[IP].src, offer[IP].dst) == (GATEWAY_IP, "255.255.255.255")
    assert (offer[UDP].sport, offer[UDP].dport) == (67, 68)
    assert_checksums_are_right(offer)
    address = offer[BOOTP].yiaddr
    assert dhcp_options(offer)["message-type"] == 2
    assert dhcp_options(offer)["NTP_server"] == GATEWAY_IP

    ack = only(stack.receive_frame(client_frame([("message-type", "request"), ("server_id", GATEWAY_IP),
                                                 ("requested_addr", address)]), now=1.0))
    # no broadcast bit, no ciaddr: unicast to chaddr and yiaddr (RFC 2131 §4.1)
    assert (ack.dst, ack[IP].dst, ack[BOOTP].yiaddr) == (CLIENT_MAC, address, address)
    assert dhcp_options(ack)["message-type"] == 5 and dhcp_options(ack)["router"] == GATEWAY_IP
    assert_checksums_are_right(ack)

    renewal = only(stack.receive_frame(client_frame([("message-type", "request")], src=address, dst=GATEWAY_IP,
                                                    dst_mac=GATEWAY_MAC, ciaddr=address), now=3600.0))
    assert (renewal.dst, renewal[IP].src, renewal[IP].dst) == (CLIENT_MAC, GATEWAY_IP, address)
    assert dhcp_options(renewal)["message-type"] == 5
    assert not stack.drops and stack.frames_sent == 3


def test_a_nak_is_broadcast_through_the_stack(stack):
    nak = only(stack.receive_frame(client_frame([("message-type", "request"), ("requested_addr", "10.0.2.15")]),
                                   now=0.0))
    assert (nak.dst, nak[IP].dst) == ("ff:ff:ff:ff:ff:ff", "255.255.255.255")
    assert dhcp_options(nak)["message-type"] == 6
    assert_checksums_are_right(nak)


def test_discover_to_the_subnet_broadcast_is_served_too(stack):
    offer = only(stack.receive_frame(client_frame([("message-type", "discover")], dst="192.168.65.255"), now=0.0))
    assert offer[IP].src == GATEWAY_IP and dhcp_options(offer)["server_id"] == GATEWAY_IP


def test_rebinding_is_broadcast_from_the_leased_address_and_acked(stack):
    """RFC 2131 §4.4.5 REBINDING: from the client's address to 255.255.255.255 in a broadcast frame."""
    ack = only(stack.receive_frame(client_frame([("message-type", "request")], src="192.168.65.50",
                                                ciaddr="192.168.65.50"), now=0.0))
    assert dhcp_options(ack)["message-type"] == 5 and (ack.dst, ack[IP].dst) == (CLIENT_MAC, "192.168.65.50")


def test_a_renewal_to_the_gateway_in_a_broadcast_frame_is_discarded_by_the_stack(stack):
    """RFC 1122 §3.3.6: unicast IP in a link-layer broadcast. Real clients renew in a unicast frame."""
    frame = client_frame([("message-type", "request")], src="192.168.65.50", dst=GATEWAY_IP, ciaddr="192.168.65.50")
    assert stack.receive_frame(frame, now=0.0) == []
    assert stack.drops == {Drop.UNICAST_IN_LINK_BROADCAST: 1}


def test_a_discover_for_another_chaddr_gets_no_offer_through_the_stack():
    service = DhcpService(GatewayConfig())
    stack = Stack(GatewayConfig(), [service])
    frame = bytes(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
                  / UDP(sport=68, dport=67) / BOOTP(chaddr=bytes.fromhex("525400abcdef"), xid=1)
                  / DHCP(options=[("message-type", "discover"), "end"]))
    assert stack.receive_frame(frame, now=0.0) == []
    assert not stack.drops and service.drops == {DhcpDrop.CHADDR_NOT_SENDER: 1}


def test_malformed_dhcp_is_counted_by_the_service_not_the_stack():
    service = DhcpService(GatewayConfig())
    stack = Stack(GatewayConfig(), [service])
    frame = bytes(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
                  / UDP(sport=68, dport=67) / (b"\x01" * 50))
    assert stack.receive_frame(frame, now=0.0) == []
    assert not stack.drops and sum(service.drops.values()) == 1


# -- the UdpReply mechanism: the stack's guarantees hold for explicitly addressed replies ------------

class FixedReplies:
    """A UdpService answering every datagram with the given outputs."""

    port = 4444
    accepts_broadcast = True

    def __init__(self, *outputs):
        self.outputs = list(outputs)
        self.drops = Counter()

    def handle_datagram(self, source, local_ip, payload, now):
        return self.outputs


def ask(*outputs, src="192.168.65.3", mtu=1500):
    stack = Stack(GatewayConfig(mtu=mtu), [FixedReplies(*outputs)])
    frame = bytes(Ether(src=CLIENT_MAC, dst=GATEWAY_MAC) / IP(src=src, dst=GATEWAY_IP)
                  / UDP(sport=5555, dport=4444) / b"hello")
    return stack, stack.receive_frame(frame, now=0.0)


def test_plain_bytes_still_go_back_to_the_sender():
    _, outputs = ask(b"plain")
    reply = only(outputs)
    assert (reply.dst, reply[IP].dst, reply[UDP].dport, reply[UDP].len) == (CLIENT_MAC, "192.168.65.3", 5555, 8 + 5)
    assert bytes(reply[UDP].payload)[:5] == b"plain"  # then Ethernet padding to 60 octets


@pytest.mark.parametrize("dst_ip, dst_mac", [
    (b"\xc0\xa8\x41\x63", None),                              # another guest address, the sender's MAC
    (b"\xff\xff\xff\xff", b"\xff" * 6),                       # limited broadcast
    (b"\xc0\xa8\x41\xff", b"\xff" * 6),                       # subnet broadcast
    (b"\xc0\xa8\x41\x63", bytes.fromhex("525400123456")),     # the sender's MAC, explicitly
])
def test_a_udp_reply_goes_where_it_says_on_the_guest_link(dst_ip, dst_mac):
    stack, outputs = ask(UdpReply(b"addressed", dst_ip, dst_mac))
    reply = only(outputs)
    assert reply.dst == (CLIENT_MAC if dst_mac in (None, CHADDR) else "ff:ff:ff:ff:ff:ff")
    assert ipaddress.IPv4Address(reply[IP].dst).packed == dst_ip
    assert (reply[IP].src, reply[UDP].sport, reply[UDP].dport) == (GATEWAY_IP, 4444, 5555)
    assert_checksums_are_right(reply)
    assert not stack.drops


@pytest.mark.parametrize("dst_ip, dst_mac", [
    (b"\xc0\xa8\x41\x63", bytes.fromhex("525400999999")),     # another MAC: not the guest that asked
    (b"\xc0\xa8\x41\x63", bytes.fromhex("01005e000001")),     # a multicast MAC
    (b"\x0a\x00\x00\x01", None),                              # off the guest subnet
    (b"\xc0\xa8\x41\x01", None),                              # the gateway itself
    (b"\x00\x00\x00\x00", None),                              # unspecified
    (b"\xc0\xa8\x41", None),                                  # not an address
])
def test_a_udp_reply_beyond_the_asking_guest_is_dropped_and_counted(dst_ip, dst_mac):
    stack, outputs = ask(UdpReply(b"nope", dst_ip, dst_mac), b"fine")
    assert only(outputs)[IP].dst == "192.168.65.3"  # the plain reply beside it still goes out
    assert stack.drops == {Drop.REPLY_BAD_DESTINATION: 1}
    assert stack.frames_sent == 1


def test_a_udp_reply_over_the_mtu_is_dropped_and_counted():
    stack, outputs = ask(UdpReply(bytes(600), b"\xff\xff\xff\xff", b"\xff" * 6), mtu=576)
    assert outputs == [] and stack.drops == {Drop.REPLY_OVER_MTU: 1}
