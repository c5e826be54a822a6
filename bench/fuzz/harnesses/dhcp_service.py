"""The DHCP parser and server (RFC 2131) over a sequence of client messages.

Input: messages, each a u16 big-endian length and bytes, from one guest MAC (bytes 28..34 of
each message are set to it when byte 0 of the input is odd, so that the server reads on),
one second apart. Properties: no exception escapes; each message is exactly one of: dropped
under one reason, taken without a reply by rule (DECLINE, RELEASE: counted in `taken`), or
answered with replies that parse back as BOOTREPLY (op 2) of type OFFER, ACK
or NAK with the client's xid and chaddr, addressed to the asking MAC or broadcast and to a
guest subnet host or a broadcast address, from the gateway (option 54), within the MTU and
the client's maximum message size; a lease offered or acked is a host of the subnet.
"""

from __future__ import annotations

import struct

from bench.fuzz.frame_checks import require
from bench.fuzz.seeds import GUEST_MAC, dhcp_message
from gateway.core.addresses import GuestSubnet
from gateway.core.config import GatewayConfig
from gateway.core.service import GuestAddress, UdpReply
from plugins.dhcp.packet import DhcpMessage, parse_message
from plugins.dhcp.service import DhcpService

NAME = "dhcp_service"
GATEWAY = GatewayConfig()
SUBNET = GuestSubnet.of_gateway(GATEWAY)
SERVER_IP = bytes([192, 168, 65, 1])
SOURCE = GuestAddress(GUEST_MAC, b"\0\0\0\0", 68)
BROADCASTS = {b"\xff\xff\xff\xff", bytes([192, 168, 65, 255])}


def _join(messages: list[bytes], flags: int = 1) -> bytes:
    return bytes([flags]) + b"".join(struct.pack("!H", len(m)) + m for m in messages)


def seeds() -> list[bytes]:
    offered = bytes([192, 168, 65, 3])
    return [_join([dhcp_message(1)]),
            _join([dhcp_message(1), dhcp_message(3, requested=offered, server=SERVER_IP)]),
            _join([dhcp_message(8)]), _join([dhcp_message(7), dhcp_message(4, requested=offered)])]


def check(data: bytes) -> None:
    if not data:
        return
    service = DhcpService(GATEWAY)
    offset, messages = 1, []
    while offset + 2 <= len(data) and len(messages) < 16:
        (n,) = struct.unpack_from("!H", data, offset)
        message = bytearray(data[offset + 2:offset + 2 + n])
        if data[0] & 1 and len(message) >= 34:
            message[28:34] = GUEST_MAC
        messages.append(bytes(message))
        offset += 2 + n
    for i, payload in enumerate(messages):
        drops, taken = sum(service.drops.values()), sum(service.taken.values())
        replies = service.handle_datagram(SOURCE, SERVER_IP, payload, 100.0 + i)
        outcomes = (bool(replies), sum(service.drops.values()) - drops, sum(service.taken.values()) - taken)
        require(sorted(outcomes) == [0, 0, 1], f"a message not exactly one of answered, dropped, taken: {outcomes}")
        request = parse_message(payload)
        for reply in replies:
            require(type(reply) is UdpReply, f"replied with {type(reply).__name__}")
            require(reply.dst_mac in (None, SOURCE.mac, b"\xff" * 6), "a reply to another MAC")
            require(reply.dst_ip in BROADCASTS or SUBNET.is_host(reply.dst_ip), "a reply off the guest subnet")
            require(28 + len(reply.payload) <= GATEWAY.mtu, "a reply over the MTU")
            parsed = parse_message(reply.payload)
            require(isinstance(parsed, DhcpMessage), f"a reply that does not parse: {parsed}")
            require(parsed.op == 2 and parsed.options[53][0] in (2, 5, 6), "not an OFFER, ACK or NAK")
            require(isinstance(request, DhcpMessage) and parsed.xid == request.xid and parsed.chaddr == request.chaddr,
                    "a reply to another transaction")
            require(parsed.options.get(54) == SERVER_IP, "server identifier is not the gateway")
            if parsed.options[53][0] in (2, 5) and parsed.yiaddr != b"\0\0\0\0":
                require(SUBNET.is_host(parsed.yiaddr), "leased an address that is not a guest host")
            limit = request.options.get(57)
            if limit is not None and len(limit) == 2 and int.from_bytes(limit, "big") >= 576:
                require(28 + len(reply.payload) <= int.from_bytes(limit, "big"), "over the client's maximum size")
