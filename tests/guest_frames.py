"""Test frames crafted with scapy (the oracle), and the addresses the tests use."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether

GATEWAY_MAC = "f6:16:36:bc:f9:c6"
GATEWAY_IP = "192.168.65.1"
GUEST_MAC = "52:54:00:12:34:56"
GUEST_IP = "192.168.65.3"


def ntp_request(mode: int = 3, version: int = 4, transmit: bytes = b"\x12\x34\x56\x78\x9a\xbc\xde\xf0",
                size: int = 48) -> bytes:
    """An NTP request payload: LI=0, the given version and mode, poll 6, the transmit timestamp at 40."""
    header = bytes([(version << 3) | mode, 0, 6, 0xEC]) + bytes(36) + transmit
    return (header + bytes(max(0, size - 48)))[:size]


def arp_request(target: str = GATEWAY_IP, sender_ip: str = GUEST_IP) -> bytes:
    return bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=GUEST_MAC)
                 / ARP(op=1, hwsrc=GUEST_MAC, psrc=sender_ip, hwdst="00:00:00:00:00:00", pdst=target))


def to_gateway(l4, *, src: str = GUEST_IP, dst: str = GATEWAY_IP, **ip_fields) -> bytes:
    return bytes(Ether(dst=GATEWAY_MAC, src=GUEST_MAC) / IP(src=src, dst=dst, **ip_fields) / l4)


def udp_to_gateway(payload: bytes, dport: int = 123, sport: int = 40000, **ip_fields) -> bytes:
    return to_gateway(UDP(sport=sport, dport=dport) / payload, **ip_fields)


def ping(payload: bytes = b"hostclock-ping", ident: int = 0x1234, seq: int = 1) -> bytes:
    return to_gateway(ICMP(type=8, id=ident, seq=seq) / payload)
