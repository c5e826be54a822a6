"""ARP for IPv4 over Ethernet (RFC 826).

RFC 826, "Packet Reception": "?Do I have the hardware type in ar$hrd? ... ?Do I
speak the protocol in ar$pro? ... ?Am I the target protocol address? Yes: ...
?Is the opcode ares_op$REQUEST? Yes: Swap hardware and protocol fields, putting
the local hardware and protocol addresses in the sender fields. Set the ar$op
field to ares_op$REPLY. Send the packet to the (new) target hardware address on
the same hardware on which the request was received."
"""

from __future__ import annotations

import struct

__all__ = ["PACKET", "PACKET_LEN", "OP_REQUEST", "OP_REPLY", "HTYPE_ETHERNET", "build_packet"]

# htype, ptype, hlen, plen, op, sender MAC, sender IP, target MAC, target IP
PACKET = struct.Struct("!HHBBH6s4s6s4s")
PACKET_LEN = PACKET.size  # 28

HTYPE_ETHERNET = 1
PTYPE_IPV4 = 0x0800
OP_REQUEST = 1
OP_REPLY = 2


def build_packet(op: int, sender_mac: bytes, sender_ip: bytes, target_mac: bytes, target_ip: bytes) -> bytes:
    return PACKET.pack(HTYPE_ETHERNET, PTYPE_IPV4, 6, 4, op, sender_mac, sender_ip, target_mac, target_ip)
