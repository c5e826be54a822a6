"""The 48-byte NTP header (RFC 5905 §7.3, RFC 4330 §4): layout, modes, leap indicators.

RFC 5905 §7.3, Figure 8::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    |LI | VN  |Mode |    Stratum     |     Poll      |  Precision   |
    |                         Root Delay                            |
    |                         Root Dispersion                       |
    |                          Reference ID                         |
    |                     Reference Timestamp (64)                  |
    |                      Origin Timestamp (64)                    |
    |                      Receive Timestamp (64)                   |
    |                      Transmit Timestamp (64)                  |

Extension fields and a MAC may follow (RFC 7822); this module only knows the header. It is the one
place that knows the layout and the screening rules: the gateway's time service, the responder,
and the replay's exchange reader use it.
"""

from __future__ import annotations

import struct

__all__ = [
    "HEADER", "HEADER_LEN", "TIMESTAMP",
    "REFERENCE_OFFSET", "ORIGINATE_OFFSET", "RECEIVE_OFFSET", "TRANSMIT_OFFSET",
    "MODE_RESERVED", "MODE_SYMMETRIC_ACTIVE", "MODE_SYMMETRIC_PASSIVE", "MODE_CLIENT",
    "MODE_SERVER", "MODE_BROADCAST", "MODE_CONTROL", "MODE_PRIVATE", "MODE_NAMES",
    "LI_NO_WARNING", "LI_INSERT_SECOND", "LI_DELETE_SECOND", "LI_UNSYNCHRONISED", "LI_NAMES",
    "leap_of", "version_of", "mode_of", "first_byte",
    "WORD", "SUPPORTED_VERSIONS", "request_rejection", "reply_rejection", "transmit_of", "originate_of",
    "timestamp_at", "kiss_of_death",
]

#: LI/VN/mode, stratum, poll, precision, root delay, root dispersion, reference ID,
#: reference, origin, receive and transmit timestamps
HEADER = struct.Struct("!BBbbII4sQQQQ")
HEADER_LEN = HEADER.size  # 48
#: one 64-bit timestamp, for patching a single field in place
TIMESTAMP = struct.Struct("!Q")

REFERENCE_OFFSET = 16
ORIGINATE_OFFSET = 24
RECEIVE_OFFSET = 32
TRANSMIT_OFFSET = 40

# RFC 5905 §7.3, Figure 10 (Association Modes)
MODE_RESERVED = 0
MODE_SYMMETRIC_ACTIVE = 1
MODE_SYMMETRIC_PASSIVE = 2
MODE_CLIENT = 3
MODE_SERVER = 4
MODE_BROADCAST = 5
MODE_CONTROL = 6  # NTP control message (RFC 1305 Appendix B / RFC 9327)
MODE_PRIVATE = 7  # reserved for private use (ntpd's ntpdc, the `monlist` of CVE-2013-5211)

MODE_NAMES = {
    MODE_RESERVED: "reserved",
    MODE_SYMMETRIC_ACTIVE: "symmetric active",
    MODE_SYMMETRIC_PASSIVE: "symmetric passive",
    MODE_CLIENT: "client",
    MODE_SERVER: "server",
    MODE_BROADCAST: "broadcast",
    MODE_CONTROL: "NTP control message",
    MODE_PRIVATE: "reserved for private use",
}

# RFC 5905 §7.3, Figure 9 (Leap Indicator)
LI_NO_WARNING = 0
LI_INSERT_SECOND = 1  # last minute of the day has 61 seconds
LI_DELETE_SECOND = 2  # last minute of the day has 59 seconds
LI_UNSYNCHRONISED = 3  # "unknown (clock unsynchronized)"

LI_NAMES = {
    LI_NO_WARNING: "no warning",
    LI_INSERT_SECOND: "last minute of the day has 61 seconds",
    LI_DELETE_SECOND: "last minute of the day has 59 seconds",
    LI_UNSYNCHRONISED: "unknown (clock unsynchronized)",
}


def leap_of(first: int) -> int:
    """The leap indicator: the two high bits of the first byte."""
    return first >> 6


def version_of(first: int) -> int:
    """The version number: bits 5..3 of the first byte."""
    return (first >> 3) & 0x7


def mode_of(first: int) -> int:
    """The association mode: the three low bits of the first byte."""
    return first & 0x7


def first_byte(leap: int, version: int, mode: int) -> int:
    """LI, VN and mode packed into the first byte; ValueError if a field does not fit."""
    if not 0 <= leap <= 3:
        raise ValueError(f"leap indicator {leap} does not fit in 2 bits (0..3)")
    if not 0 <= version <= 7:
        raise ValueError(f"version {version} does not fit in 3 bits (0..7)")
    if not 0 <= mode <= 7:
        raise ValueError(f"mode {mode} does not fit in 3 bits (0..7)")
    return (leap << 6) | (version << 3) | mode


# -- what the gateway forwards and passes back (RFC 4330 §5: "the server ... should discard packets" of
# other modes; mode 7 `monlist` made ntpd an amplifier, CVE-2013-5211) ----------------------------------

#: a request must be a whole number of 32-bit words (RFC 5905 §7.3: extension fields are word-aligned)
WORD = 4
#: the versions a server answers (RFC 4330 §5: "servers should reply with the same version")
SUPPORTED_VERSIONS = range(1, 5)


def request_rejection(payload: bytes) -> str | None:
    """Why a guest datagram to port 123 is not a client request the gateway forwards, or None."""
    length = len(payload)
    if length < HEADER_LEN:
        return "ntp: request shorter than 48 bytes"
    if length % WORD:
        return "ntp: request length not a multiple of 4"
    version = version_of(payload[0])
    if version not in SUPPORTED_VERSIONS:
        return f"ntp: version {version} (only 1-4 are answered)"
    mode = mode_of(payload[0])
    if mode != MODE_CLIENT:
        return f"ntp: mode {mode} (only client requests, mode 3, are forwarded)"
    return None


def reply_rejection(payload: bytes, request_len: int) -> str | None:
    """Why an upstream's datagram is not passed back to the guest as a reply to a `request_len` request."""
    if len(payload) < HEADER_LEN or mode_of(payload[0]) != MODE_SERVER:
        return "ntp: upstream reply is not an NTP server reply (mode 4)"
    if len(payload) > request_len:
        return "ntp: upstream reply longer than the request (anti-amplification)"
    return None


def transmit_of(payload: bytes) -> bytes:
    """The 8 bytes of the transmit timestamp (a request's; the reply echoes them as its originate)."""
    return payload[TRANSMIT_OFFSET:TRANSMIT_OFFSET + 8]


def originate_of(payload: bytes) -> bytes:
    """The 8 bytes of the originate timestamp."""
    return payload[ORIGINATE_OFFSET:ORIGINATE_OFFSET + 8]


def timestamp_at(payload: bytes, offset: int) -> int:
    """The 64-bit timestamp at `offset`, as an integer (32.32 fixed point, era unknown)."""
    return TIMESTAMP.unpack_from(payload, offset)[0]


def kiss_of_death(request: bytes, code: bytes) -> bytes:
    """A Kiss-o'-Death reply to the (screened) client `request`: RFC 5905 §7.4, "a special type of
    packet ... with the Stratum field set to zero and the Reference ID field carrying a four-
    character ASCII code" (b"RATE": "Rate exceeded. The server has temporarily denied access
    because the client exceeded the rate threshold"). Mode 4, the request's version and poll,
    LI 3 (the server cannot say the time), the originate the request's transmit, so that the
    client can match it; no time of the gateway's: receive and transmit are zero (RFC 4330 §5:
    a client discards a reply whose transmit timestamp is zero, and it carries no time to use)."""
    if len(code) != 4:
        raise ValueError(f"a kiss code is four ASCII characters, not {code!r}")
    first = request[0]
    return HEADER.pack(first_byte(LI_UNSYNCHRONISED, version_of(first), MODE_SERVER), 0, request[2], 0, 0, 0,
                       code, 0, TIMESTAMP.unpack_from(request, TRANSMIT_OFFSET)[0], 0, 0)
