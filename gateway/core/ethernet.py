"""Ethernet II framing (IEEE 802.3 / RFC 894): destination, source, EtherType.

Only Ethernet II is spoken. 802.1Q VLAN tags (EtherType 0x8100/0x88a8), IEEE
802.3 length fields (values < 0x0600) and anything else are left to the caller
to drop by their EtherType.
"""

from __future__ import annotations

import struct

__all__ = ["HEADER", "HEADER_LEN", "ETHERTYPE_IPV4", "ETHERTYPE_ARP", "ETHERTYPE_IPV6",
           "ETHERTYPE_VLAN", "ETHERTYPE_QINQ", "MIN_FRAME_LEN", "build_header", "pad"]

HEADER = struct.Struct("!6s6sH")
HEADER_LEN = HEADER.size  # 14

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_VLAN = 0x8100
ETHERTYPE_QINQ = 0x88A8
ETHERTYPE_IPV6 = 0x86DD

# Frames on the wire carry at least 46 bytes of payload (60 without the FCS);
# the gateway pads what it sends, as hyperkit does (it pads frames shorter than 60 bytes to 60).
MIN_FRAME_LEN = 60


def build_header(dst_mac: bytes, src_mac: bytes, ethertype: int) -> bytes:
    return HEADER.pack(dst_mac, src_mac, ethertype)


def pad(frame: bytes) -> bytes:
    """Pad a frame to the 60-byte Ethernet minimum."""
    if len(frame) < MIN_FRAME_LEN:
        return frame + bytes(MIN_FRAME_LEN - len(frame))
    return frame
