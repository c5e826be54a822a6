"""Reading an NTP exchange for a capture replay: which reply answers which request, and T1..T3.

A server's reply echoes the request's transmit timestamp as its originate
timestamp, byte for byte (RFC 4330 §6), so those 8 bytes pair them. T1 is the
request's transmit timestamp (a real time for ntpdig and ntplib; chronyd sends
random bits, which the replay recognises as implausible); T2 and T3 are the
reply's receive and transmit timestamps (RFC 5905 §8).
"""

from __future__ import annotations

from gateway.core.plugin import ExchangeTimes

from plugins.ntp.packet import RECEIVE_OFFSET, TRANSMIT_OFFSET, originate_of, timestamp_at, transmit_of, version_of
from plugins.ntp.timestamps import ntp_to_unix_ns

__all__ = ["request_key", "reply_key", "exchange_times"]


def request_key(request: bytes) -> bytes:
    return transmit_of(request)


def reply_key(reply: bytes) -> bytes:
    return originate_of(reply)


def exchange_times(request: bytes, reply: bytes, request_ns: int, replay_now_ns: int) -> ExchangeTimes:
    """T1 on the era nearest `request_ns` (None for an all-zero transmit timestamp), T2 and T3 nearest
    `replay_now_ns`."""
    transmit = timestamp_at(request, TRANSMIT_OFFSET)
    return ExchangeTimes(
        t1_ns=ntp_to_unix_ns(transmit, request_ns) if transmit else None,
        t2_ns=ntp_to_unix_ns(timestamp_at(reply, RECEIVE_OFFSET), replay_now_ns),
        t3_ns=ntp_to_unix_ns(timestamp_at(reply, TRANSMIT_OFFSET), replay_now_ns),
        detail={"version": version_of(request[0])},
    )
