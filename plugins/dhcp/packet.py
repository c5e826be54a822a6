"""DHCP messages on the wire (RFC 2131 §2, options RFC 2132): parse a request, build a reply.

Layout (RFC 2131 §2, Figure 1): a fixed 236-byte BOOTP header (op, htype,
hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr[16],
sname[64], file[128]), then the options field, whose first four octets are
the magic cookie 99.130.83.99 (RFC 2131 §3), followed by TLV options
(RFC 2132 §2): pad (0) and end (255) are single octets, every other option is
code, length, value.

`parse_message` never raises: a message that breaks a rule comes back as the
`DhcpDrop` naming the rule. `build_message` makes well-formed replies: the
options it is given, then end, then pad to the 300-octet BOOTP minimum.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from plugins.dhcp.drops import DhcpDrop

__all__ = [
    "HEADER", "HEADER_LEN", "MAGIC_COOKIE", "MIN_MESSAGE_LEN", "BOOTP_MIN_LEN",
    "BOOTREQUEST", "BOOTREPLY", "HTYPE_ETHERNET", "FLAG_BROADCAST",
    "DISCOVER", "OFFER", "REQUEST", "DECLINE", "ACK", "NAK", "RELEASE", "INFORM", "MESSAGE_TYPE_NAMES",
    "OPT_PAD", "OPT_SUBNET_MASK", "OPT_ROUTER", "OPT_DNS_SERVERS", "OPT_INTERFACE_MTU",
    "OPT_BROADCAST_ADDRESS", "OPT_NTP_SERVERS", "OPT_REQUESTED_IP", "OPT_LEASE_TIME",
    "OPT_OVERLOAD", "OPT_MESSAGE_TYPE", "OPT_SERVER_ID", "OPT_PARAMETER_REQUEST_LIST",
    "OPT_MESSAGE", "OPT_MAX_MESSAGE_SIZE", "OPT_RENEWAL_TIME", "OPT_REBINDING_TIME",
    "OPT_CLIENT_ID", "OPT_END",
    "DhcpMessage", "parse_message", "build_message", "encoded_length",
]

# op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname, file
HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
HEADER_LEN = HEADER.size  # 236
MAGIC_COOKIE = b"\x63\x82\x53\x63"  # 99.130.83.99
MIN_MESSAGE_LEN = HEADER_LEN + len(MAGIC_COOKIE)  # 240
#: RFC 1542 §2.1: BOOTP messages are at least 300 octets (a 64-octet vendor field);
#: replies are padded to it, as the BOOTP-era clients and relays expect.
BOOTP_MIN_LEN = 300

BOOTREQUEST = 1
BOOTREPLY = 2
HTYPE_ETHERNET = 1
#: RFC 2131 §2, Figure 2: the leftmost bit of 'flags' is the BROADCAST (B) flag
FLAG_BROADCAST = 0x8000

# RFC 2132 §9.6: DHCP message types
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MESSAGE_TYPE_NAMES = {DISCOVER: "DHCPDISCOVER", OFFER: "DHCPOFFER", REQUEST: "DHCPREQUEST",
                      DECLINE: "DHCPDECLINE", ACK: "DHCPACK", NAK: "DHCPNAK",
                      RELEASE: "DHCPRELEASE", INFORM: "DHCPINFORM"}

# RFC 2132 option codes
OPT_PAD = 0
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_DNS_SERVERS = 6
OPT_INTERFACE_MTU = 26
OPT_BROADCAST_ADDRESS = 28
OPT_NTP_SERVERS = 42
OPT_REQUESTED_IP = 50
OPT_LEASE_TIME = 51
OPT_OVERLOAD = 52
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_PARAMETER_REQUEST_LIST = 55
OPT_MESSAGE = 56
OPT_MAX_MESSAGE_SIZE = 57
OPT_RENEWAL_TIME = 58
OPT_REBINDING_TIME = 59
OPT_CLIENT_ID = 61
OPT_END = 255

_ZERO_IP = b"\0\0\0\0"
_FILE_START = HEADER_LEN - 128
_SNAME_START = _FILE_START - 64


@dataclass(frozen=True, slots=True)
class DhcpMessage:
    """One DHCP message; addresses are 4 raw bytes, `chaddr` the full 16-byte field."""

    op: int
    xid: int
    chaddr: bytes
    htype: int = HTYPE_ETHERNET
    hlen: int = 6
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: bytes = _ZERO_IP
    yiaddr: bytes = _ZERO_IP
    siaddr: bytes = _ZERO_IP
    giaddr: bytes = _ZERO_IP
    sname: bytes = b""
    file: bytes = b""
    #: option code -> value, in the order first seen. Several instances of one code
    #: are concatenated into one value (RFC 3396 §7, the "long options" rule).
    options: Mapping[int, bytes] = field(default_factory=dict)

    @property
    def message_type(self) -> int:
        """The DHCP message type (option 53); `parse_message` guarantees it is 1-8."""
        return self.options[OPT_MESSAGE_TYPE][0]

    @property
    def client_mac(self) -> bytes:
        """The client hardware address: the first `hlen` octets of chaddr."""
        return self.chaddr[:self.hlen]

    @property
    def broadcast_flag(self) -> bool:
        return bool(self.flags & FLAG_BROADCAST)


def parse_message(data: bytes) -> DhcpMessage | DhcpDrop:
    """The message in a UDP payload, or the `DhcpDrop` saying why it is not a DHCP message."""
    if len(data) < MIN_MESSAGE_LEN:
        return DhcpDrop.TRUNCATED
    if data[HEADER_LEN:MIN_MESSAGE_LEN] != MAGIC_COOKIE:
        return DhcpDrop.BAD_MAGIC_COOKIE
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr,
     chaddr, sname, file) = HEADER.unpack_from(data)
    options: dict[int, bytes] = {}
    problem = _parse_options(data, MIN_MESSAGE_LEN, len(data), options)
    if problem is not None:
        return problem
    overload = options.get(OPT_OVERLOAD)
    if overload is not None:
        # RFC 2132 §9.3: 1 = 'file' holds options, 2 = 'sname', 3 = both; RFC 2131 §4.1:
        # "the 'file' field MUST be interpreted next ... followed by the 'sname' field".
        if len(overload) != 1 or overload[0] not in (1, 2, 3):
            return DhcpDrop.BAD_OPTION_OVERLOAD
        if overload[0] & 1:
            problem = _parse_options(data, _FILE_START, HEADER_LEN, options)
            file = b""
        if problem is None and overload[0] & 2:
            problem = _parse_options(data, _SNAME_START, _FILE_START, options)
            sname = b""
        if problem is not None:
            return problem
    message_type = options.get(OPT_MESSAGE_TYPE)
    if message_type is None:
        return DhcpDrop.MISSING_MESSAGE_TYPE
    if len(message_type) != 1 or not DISCOVER <= message_type[0] <= INFORM:
        return DhcpDrop.BAD_MESSAGE_TYPE
    return DhcpMessage(op=op, htype=htype, hlen=hlen, hops=hops, xid=xid, secs=secs, flags=flags,
                       ciaddr=ciaddr, yiaddr=yiaddr, siaddr=siaddr, giaddr=giaddr, chaddr=chaddr,
                       sname=sname, file=file, options=options)


def _parse_options(data: bytes, start: int, end: int, into: dict[int, bytes]) -> DhcpDrop | None:
    """Add the TLV options in data[start:end] to `into`; the drop reason if they are malformed.

    RFC 2132 §3.1/§3.2: pad (0) and end (255) are one octet each ("Only options 0
    and 255 are fixed length"); every other option is code, length, value. "The end
    option marks the end of valid information": what follows it is ignored.
    """
    i = start
    while i < end:
        code = data[i]
        if code == OPT_PAD:
            i += 1
            continue
        if code == OPT_END:
            return None
        if i + 1 >= end:
            return DhcpDrop.BAD_OPTION_LENGTH
        value_end = i + 2 + data[i + 1]
        if value_end > end:
            return DhcpDrop.BAD_OPTION_LENGTH
        value = data[i + 2:value_end]
        known = into.get(code)
        into[code] = value if known is None else known + value
        i = value_end
    return DhcpDrop.MISSING_END_OPTION


def encoded_length(options: Iterable[tuple[int, bytes]]) -> int:
    """The length `build_message` gives a message with `options`, before padding to 300."""
    return MIN_MESSAGE_LEN + sum(2 + len(value) for _, value in options) + 1


def build_message(message: DhcpMessage, options: Iterable[tuple[int, bytes]] | None = None) -> bytes:
    """The wire form of `message`: header, cookie, options (`options` in the given order,
    else `message.options`), end, then pad octets up to `BOOTP_MIN_LEN`.

    Raises ValueError for an option value over 255 octets and struct.error for a header
    field out of range: a bug in the caller, never a property of guest input.
    """
    encoded = [HEADER.pack(message.op, message.htype, message.hlen, message.hops, message.xid,
                           message.secs, message.flags, message.ciaddr, message.yiaddr,
                           message.siaddr, message.giaddr, message.chaddr, message.sname,
                           message.file),
               MAGIC_COOKIE]
    for code, value in (message.options.items() if options is None else options):
        if not 0 < code < OPT_END or len(value) > 255:
            raise ValueError(f"option {code} with {len(value)} octets cannot be encoded")
        encoded.append(bytes((code, len(value))))
        encoded.append(value)
    encoded.append(bytes((OPT_END,)))
    wire = b"".join(encoded)
    if len(wire) < BOOTP_MIN_LEN:
        wire += bytes(BOOTP_MIN_LEN - len(wire))
    return wire
