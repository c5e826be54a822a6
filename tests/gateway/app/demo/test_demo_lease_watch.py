"""The guest's lease read off the wire: the real DHCP plugin's DHCPACK, not its OFFER, not other frames."""

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from gateway import Config, build_stack
from gateway.app.demo.lease_watch import lease_in_frame

CLIENT_MAC = "52:54:00:12:34:56"
CHADDR = bytes.fromhex(CLIENT_MAC.replace(":", ""))


def client_frame(options) -> bytes:
    return bytes(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
                 / UDP(sport=68, dport=67) / BOOTP(chaddr=CHADDR, xid=0x5EED) / DHCP(options=[*options, "end"]))


def test_the_ack_of_the_gateways_dhcp_server_is_a_lease_with_its_ntp_server():
    stack = build_stack(Config())
    [offer] = stack.receive_frame(client_frame([("message-type", "discover"), ("param_req_list", [1, 3, 42])]), 0.0)
    assert lease_in_frame(offer) is None  # an offer grants nothing yet
    address = Ether(offer)[BOOTP].yiaddr
    [ack] = stack.receive_frame(client_frame([("message-type", "request"), ("server_id", "192.168.65.1"),
                                              ("requested_addr", address)]), 1.0)
    lease = lease_in_frame(ack)
    assert lease is not None
    assert (lease.mac, lease.ip, lease.ntp_servers) == (CHADDR, address, ("192.168.65.1",))
    assert lease.lease_time_s == 7200  # the DHCP plugin's default lease


def server_frame(options, *, raw_tail: bytes = b"") -> bytes:
    return bytes(Ether(dst=CLIENT_MAC) / IP(src="192.168.65.1", dst="192.168.65.3") / UDP(sport=67, dport=68)
                 / BOOTP(op=2, yiaddr="192.168.65.3", chaddr=CHADDR) / DHCP(options=options)) + raw_tail


def test_a_handmade_ack_and_what_is_not_one():
    good = server_frame([("message-type", "ack"), ("lease_time", 60), "end"])
    assert lease_in_frame(good).lease_time_s == 60 and lease_in_frame(good).ntp_servers == ()
    assert lease_in_frame(server_frame([("message-type", "nak"), "end"])) is None
    for cut in (14, 40, 100, 250, 280):  # inside the headers or the BOOTP fixed part
        assert lease_in_frame(good[:cut]) is None
    # an option running past the end of the frame (no end option): malformed, no lease
    assert lease_in_frame(server_frame([("message-type", "ack")], raw_tail=b"\x2a\x08\xc0\xa8")) is None
    # not from the server port
    assert lease_in_frame(bytes(Ether() / IP() / UDP(sport=123, dport=68) / (b"\0" * 300))) is None
