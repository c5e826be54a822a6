"""ICMP echo and timestamp (RFC 792).

"The data received in the echo message must be returned in the echo reply
message." The checksum covers the whole ICMP message. Port unreachable (type 3
code 3) quotes the offending IP header and the first 8 bytes of its payload.

Timestamp (type 13) and timestamp reply (type 14): identifier, sequence number,
then three 32-bit timestamps, originate, receive and transmit. RFC 792: "The
Timestamp is 32 bits of milliseconds since midnight UT. If the time is not
available in miliseconds or cannot be provided with respect to midnight UT
then any time can be inserted in a timestamp provided the high order bit of
the timestamp is also set to indicate this non-standard value."
"""

from __future__ import annotations

import struct

from gateway.core.checksum import internet_checksum

__all__ = ["HEADER", "HEADER_LEN", "TYPE_ECHO_REPLY", "TYPE_ECHO_REQUEST",
           "TYPE_DEST_UNREACHABLE", "CODE_PORT_UNREACHABLE", "build_message",
           "TYPE_TIMESTAMP", "TYPE_TIMESTAMP_REPLY", "TIMESTAMP_MESSAGE", "TIMESTAMP_MESSAGE_LEN",
           "MS_PER_DAY", "NON_STANDARD_TIMESTAMP", "build_timestamp_request"]

HEADER = struct.Struct("!BBH")  # type, code, checksum; then rest-of-header and data
HEADER_LEN = 8  # with the 4-byte rest-of-header (identifier + sequence for echo)

TYPE_ECHO_REPLY = 0
TYPE_DEST_UNREACHABLE = 3
TYPE_ECHO_REQUEST = 8
CODE_PORT_UNREACHABLE = 3
TYPE_TIMESTAMP = 13
TYPE_TIMESTAMP_REPLY = 14

#: type, code, checksum, identifier, sequence number, originate, receive and transmit timestamps
TIMESTAMP_MESSAGE = struct.Struct("!BBHHHIII")
TIMESTAMP_MESSAGE_LEN = TIMESTAMP_MESSAGE.size  # 20
#: milliseconds in a day: a standard timestamp is below this
MS_PER_DAY = 86_400_000
#: "the high order bit of the timestamp is also set to indicate this non-standard value"
NON_STANDARD_TIMESTAMP = 0x8000_0000


def build_message(icmp_type: int, code: int, rest: bytes) -> bytes:
    """A complete ICMP message: type, code, checksum, then `rest` (rest-of-header + data)."""
    unsummed = HEADER.pack(icmp_type, code, 0) + rest
    return unsummed[:2] + internet_checksum(unsummed).to_bytes(2, "big") + unsummed[4:]


def build_timestamp_request(identifier: int, sequence: int, originate_ms: int) -> bytes:
    """A timestamp message (type 13) with `originate_ms` (ms since midnight UT); receive and transmit 0.

    RFC 792: "The Originate Timestamp is the time the sender last touched the
    message before sending it, the Receive Timestamp is the time the echoer
    first touched it on receipt, and the Transmit Timestamp is the time the
    echoer last touched the message on sending it."
    """
    if not 0 <= originate_ms < MS_PER_DAY:
        raise ValueError(f"originate {originate_ms} is not milliseconds since midnight UT (0 to {MS_PER_DAY - 1})")
    return build_message(TYPE_TIMESTAMP, 0, TIMESTAMP_MESSAGE.pack(0, 0, 0, identifier, sequence,
                                                                  originate_ms, 0, 0)[4:])
