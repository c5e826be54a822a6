"""IPv4 headers (RFC 791 §3.1).

The gateway only delivers locally, so it checks what local delivery needs:
version 4, IHL >= 5, total length within the frame, a valid header checksum,
and no fragmentation (reassembly is not offered: a fragment is dropped).
Options are allowed and skipped (IHL > 5). TTL is not checked.
"""

from __future__ import annotations

import struct

from gateway.core.checksum import internet_checksum

__all__ = ["HEADER", "HEADER_LEN", "PROTO_ICMP", "PROTO_UDP", "PROTO_TCP", "FLAG_MF",
           "FRAGMENT_OFFSET_MASK", "build_header", "DEFAULT_TTL"]

# version/IHL, DSCP/ECN, total length, identification, flags/fragment offset,
# TTL, protocol, header checksum, source, destination
HEADER = struct.Struct("!BBHHHBBH4s4s")
HEADER_LEN = HEADER.size  # 20

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17

FLAG_DF = 0x4000
FLAG_MF = 0x2000
FRAGMENT_OFFSET_MASK = 0x1FFF
DEFAULT_TTL = 64


def build_header(src: bytes, dst: bytes, protocol: int, payload_len: int, ttl: int = DEFAULT_TTL) -> bytes:
    """A 20-byte header with DF set and a correct checksum (RFC 791 §3.1)."""
    header = HEADER.pack(0x45, 0, HEADER_LEN + payload_len, 0, FLAG_DF, ttl, protocol, 0, src, dst)
    checksum = internet_checksum(header)
    return header[:10] + checksum.to_bytes(2, "big") + header[12:]
