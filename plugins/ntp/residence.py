"""Residence-time correction: the gateway takes the time a reply's exchange spent inside it out of the reply.

A guest's client cannot tell the gateway's processing from network delay, and
whatever of it falls on one leg of an exchange and not the other reads as
offset. The gateway knows it, as a PTP transparent clock knows how long a
packet stayed inside it (IEEE 1588 "residence time"): the request arrived from
the guest at Tr and was handed upstream at Ts; the upstream's reply reached the
gateway at Tu and goes to the guest at Tw. Moving the server's timestamps to the
gateway's edges,

    receive  T2' = T2 - (Ts - Tr)
    transmit T3' = T3 + (Tw - Tu)

makes the guest see the gateway's edge as the server (its delay shrinks to the
link's, and the gateway's own jitter no longer reaches its offset), whatever
the upstream: only durations are used, never the gateway's reading of the time.

Sans-IO: the edges measure the two durations and pass them in. Only a plain
48-byte server reply (mode 4) is rewritten. Anything longer carries extension
fields or a MAC (RFC 7822 §7.5: a MAC covers the header; symmetric keys, NTS
(RFC 8915) authenticate it), and rewriting would break it: it passes untouched.
So does a reply whose durations are negative or implausibly long (the host clock
stepped mid-exchange, or the gateway stalled), with the reason returned so that
the caller can count it. The originate timestamp is never touched: the client
matches the reply to its request with it, byte for byte.
"""

from __future__ import annotations

import struct

from plugins.ntp.packet import HEADER_LEN, MODE_SERVER, RECEIVE_OFFSET, TRANSMIT_OFFSET
from plugins.ntp.timestamps import ntp_shifted_by_ns

__all__ = ["correct_reply", "MAX_RESIDENCE_NS", "NOT_PLAIN", "NOT_SERVER_REPLY", "NO_TIMESTAMPS",
           "NEGATIVE_RESIDENCE", "IMPLAUSIBLE_RESIDENCE"]

#: a residence above this is not the gateway's processing (a stall or a clock step): no correction.
#: Generous: a scheduling hiccup of a loaded host is milliseconds; clients time out after about a second.
MAX_RESIDENCE_NS = 200_000_000

NOT_PLAIN = "ntp residence: not a plain 48-byte reply (extension fields, MAC or NTS), passed untouched"
NOT_SERVER_REPLY = "ntp residence: not a server reply (mode 4), passed untouched"
NO_TIMESTAMPS = "ntp residence: receive or transmit timestamp is zero, passed untouched"
NEGATIVE_RESIDENCE = "ntp residence: negative residence time (clock stepped?), passed uncorrected"
IMPLAUSIBLE_RESIDENCE = "ntp residence: residence time over 0.2 s, passed uncorrected"

#: the receive and transmit timestamps, side by side at the end of the header
_RECEIVE_TRANSMIT = struct.Struct("!QQ")
assert TRANSMIT_OFFSET == RECEIVE_OFFSET + 8 and HEADER_LEN == TRANSMIT_OFFSET + 8


def correct_reply(reply: bytes, request_residence_ns: int, reply_residence_ns: int) -> tuple[bytes, str | None]:
    """The reply with T2 moved earlier by the request's residence and T3 later by the reply's.

    Returns (reply to send, None) when corrected, or (`reply` itself, the reason) when it is
    passed untouched. Never raises on the reply's content.
    """
    if len(reply) != HEADER_LEN:
        return reply, NOT_PLAIN
    if reply[0] & 7 != MODE_SERVER:
        return reply, NOT_SERVER_REPLY
    if request_residence_ns < 0 or reply_residence_ns < 0:
        return reply, NEGATIVE_RESIDENCE
    if request_residence_ns > MAX_RESIDENCE_NS or reply_residence_ns > MAX_RESIDENCE_NS:
        return reply, IMPLAUSIBLE_RESIDENCE
    receive, transmit = _RECEIVE_TRANSMIT.unpack_from(reply, RECEIVE_OFFSET)
    if not receive or not transmit:
        return reply, NO_TIMESTAMPS
    return reply[:RECEIVE_OFFSET] + _RECEIVE_TRANSMIT.pack(ntp_shifted_by_ns(receive, -request_residence_ns),
                                                           ntp_shifted_by_ns(transmit, reply_residence_ns)), None
