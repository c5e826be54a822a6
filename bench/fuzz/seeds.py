"""Valid inputs the campaign starts from (built by hand with struct: no scapy here)."""

from __future__ import annotations

import struct

from bench.common import GATEWAY_IP, GATEWAY_MAC, GUEST_IP, GUEST_MAC, _checksum, arp_request, ntp_request, udp_frame

BROADCAST_IP = b"\xff" * 4


def icmp_echo_frame(payload: bytes = b"hostclock-fuzz") -> bytes:
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 1) + payload
    icmp = icmp[:2] + struct.pack("!H", _checksum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0x4000, 64, 1, 0, GUEST_IP, GATEWAY_IP)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return GATEWAY_MAC + GUEST_MAC + b"\x08\x00" + ip + icmp


def dhcp_message(message_type: int, *, requested: bytes | None = None, server: bytes | None = None,
                 xid: int = 0x1234ABCD) -> bytes:
    """A DHCP client message (RFC 2131 §2), with options 53, 55 and optionally 50 and 54."""
    fixed = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, bytes(4), bytes(4), bytes(4),
                        bytes(4), GUEST_MAC + bytes(10), bytes(64), bytes(128))
    options = bytes([53, 1, message_type, 55, 4, 1, 3, 6, 42, 57, 2, 0x05, 0xDC])
    if requested is not None:
        options += bytes([50, 4]) + requested
    if server is not None:
        options += bytes([54, 4]) + server
    return fixed + b"\x63\x82\x53\x63" + options + b"\xff"


def dhcp_frame(payload: bytes) -> bytes:
    return udp_frame(payload, 68, src_ip=bytes(4), dst_ip=BROADCAST_IP, dport=67, dst_mac=b"\xff" * 6)


def stack_seed_frames() -> list[bytes]:
    offered = bytes([192, 168, 65, 3])
    return [
        arp_request(),
        icmp_echo_frame(),
        udp_frame(ntp_request(), 40000),
        udp_frame(ntp_request(version=3) + bytes(20), 40001),  # 68 bytes: a key ID and MAC
        dhcp_frame(dhcp_message(1)),
        dhcp_frame(dhcp_message(3, requested=offered, server=GATEWAY_IP)),
        udp_frame(b"closed port", 40002, dport=9),
        udp_frame(b"to the host alias", 40003, dst_ip=bytes([192, 168, 65, 2]), dport=123),
        GATEWAY_MAC + GUEST_MAC + b"\x86\xdd" + bytes(40),
        GATEWAY_MAC + GUEST_MAC + b"\x81\x00\x00\x01\x08\x00" + bytes(40),
    ]
