"""ICMP echo (RFC 792).

"The data received in the echo message must be returned in the echo reply
message." The checksum covers the whole ICMP message. Port unreachable (type 3
code 3) quotes the offending IP header and the first 8 bytes of its payload.
"""

from __future__ import annotations

import struct

from gateway.core.checksum import internet_checksum

__all__ = ["HEADER", "HEADER_LEN", "TYPE_ECHO_REPLY", "TYPE_ECHO_REQUEST",
           "TYPE_DEST_UNREACHABLE", "CODE_PORT_UNREACHABLE", "build_message"]

HEADER = struct.Struct("!BBH")  # type, code, checksum; then rest-of-header and data
HEADER_LEN = 8  # with the 4-byte rest-of-header (identifier + sequence for echo)

TYPE_ECHO_REPLY = 0
TYPE_DEST_UNREACHABLE = 3
TYPE_ECHO_REQUEST = 8
CODE_PORT_UNREACHABLE = 3


def build_message(icmp_type: int, code: int, rest: bytes) -> bytes:
    """A complete ICMP message: type, code, checksum, then `rest` (rest-of-header + data)."""
    unsummed = HEADER.pack(icmp_type, code, 0) + rest
    return unsummed[:2] + internet_checksum(unsummed).to_bytes(2, "big") + unsummed[4:]
