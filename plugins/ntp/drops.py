"""Why the SNTP responder did not answer a datagram. Bad input is data: every drop is counted by reason."""

from __future__ import annotations

import enum

__all__ = ["SntpDrop"]


class SntpDrop(enum.StrEnum):
    # length (RFC 5905 §7.3 header; RFC 7822 extension fields and MAC come in 32-bit words)
    TOO_SHORT = "sntp: shorter than the 48-byte NTP header"
    NOT_WORD_ALIGNED = "sntp: length not a multiple of 4 (extension fields and MACs are 32-bit words)"
    TRUNCATED = "sntp: datagram larger than the receive buffer (truncated by the kernel)"
    # version (RFC 4330 §6: "VN 1-4")
    BAD_VERSION = "sntp: version outside 1..4"
    # mode (RFC 4330 §6: "For any other value in the Mode field, the request is discarded.")
    MODE_RESERVED = "sntp: mode 0 (reserved)"
    MODE_SYMMETRIC_PASSIVE = "sntp: mode 2 (symmetric passive; a reply, not a request)"
    MODE_SERVER = "sntp: mode 4 (server; a reply, not a request)"
    MODE_BROADCAST = "sntp: mode 5 (broadcast)"
    MODE_CONTROL = "sntp: mode 6 (NTP control message: management query, never answered)"
    MODE_PRIVATE = "sntp: mode 7 (private: ntpdc/monlist, the CVE-2013-5211 amplifier, never answered)"
    # the socket edge
    SEND_WOULD_BLOCK = "sntp: send buffer full (reply dropped)"
    SEND_FAILED = "sntp: sendto failed"
    RECEIVE_ERROR = "sntp: recvmsg reported an error"
    KERNEL_QUEUE_FULL = "sntp: dropped by the kernel before the responder read it (receive queue full)"
