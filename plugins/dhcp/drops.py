"""Why a datagram to the DHCP server was dropped. Bad input is data: each drop is counted by reason.

The reasons cite the rule they enforce (RFC 2131, RFC 2132); a drop never raises.
"""

from __future__ import annotations

import enum

__all__ = ["DhcpDrop"]


class DhcpDrop(enum.StrEnum):
    # the message itself (plugins.dhcp.packet)
    TRUNCATED = "dhcp: shorter than the 236-byte BOOTP header and the 4-byte magic cookie"
    BAD_MAGIC_COOKIE = "dhcp: options do not start with the magic cookie 99.130.83.99 (RFC 2131 §3)"
    BAD_OPTION_LENGTH = "dhcp: an option's length runs past the end of its field (RFC 2132 §2)"
    MISSING_END_OPTION = "dhcp: options not terminated by the end option 255 (RFC 2132 §3.2)"
    BAD_OPTION_OVERLOAD = "dhcp: option overload (52) is not one octet of 1, 2 or 3 (RFC 2132 §9.3)"
    MISSING_MESSAGE_TYPE = "dhcp: no DHCP message type option 53 (a BOOTP request; RFC 2131 Table 5)"
    BAD_MESSAGE_TYPE = "dhcp: message type option 53 is not one octet from 1 to 8 (RFC 2132 §9.6)"
    # who sent it (plugins.dhcp.service)
    NOT_BOOTREQUEST = "dhcp: op is not BOOTREQUEST (1); servers ignore replies (RFC 2131 §2)"
    NOT_ETHERNET = "dhcp: htype/hlen are not Ethernet (1/6) (RFC 2131 §2)"
    RELAYED = "dhcp: giaddr is set, but no relay agent can sit on the guest link (RFC 2131 §4.1)"
    CHADDR_NOT_SENDER = ("dhcp: chaddr is not the MAC the request came from; with no relay agent on the "
                         "guest link a client asks only for itself (RFC 2131 §4.1, §7)")
    SERVER_MESSAGE_TYPE = "dhcp: a server's message type (OFFER, ACK, NAK) sent to the server"
    # what it asks for
    NO_ADDRESS_AVAILABLE = "dhcp: DISCOVER with every pool address taken (no OFFER; RFC 2131 §4.3.1)"
    NOT_OUR_SERVER_ID = "dhcp: RELEASE or DECLINE names another server identifier (RFC 2131 §4.3.3, §4.3.4)"
    OTHER_SERVER_SELECTED = "dhcp: REQUEST names another server identifier: our offer was declined (RFC 2131 §4.3.2)"
    REQUEST_WITHOUT_ADDRESS = "dhcp: REQUEST with neither requested address (50) nor ciaddr (RFC 2131 §4.3.2)"
    RELEASE_UNKNOWN = "dhcp: RELEASE of an address this client does not hold (RFC 2131 §4.3.4)"
    DECLINE_UNKNOWN = "dhcp: DECLINE of an address not offered to this client (RFC 2131 §4.3.3)"
    INFORM_OFF_SUBNET = "dhcp: INFORM from an address that is not a guest host of the subnet (RFC 2131 §4.3.5)"
