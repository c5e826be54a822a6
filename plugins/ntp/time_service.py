"""The time service: UDP/123 on the gateway, forwarded to an SNTP server on the host's loopback.

Sans-IO. A guest's NTP request becomes a `Forward` on the guest's flow (see
`gateway.core.flows`); the upstream's reply comes back through `handle_upstream`
and goes to the guest from gateway:123, to the port it asked from.

The gateway screens both directions, so that even an upstream that speaks more
than SNTP (an ntpd with mode 6/7 enabled) is only reachable as an SNTP server:
only client requests (mode 3) of versions 1–4 and SNTP sizes are forwarded
(RFC 4330 §5: "the server ... should discard packets" of other modes; mode 7
`monlist` made ntpd an amplifier, CVE-2013-5211), and a reply is passed back
only if it is a server reply (mode 4) no longer than the request it answers.

With `report_guest_clock`, each forwarded request whose transmit timestamp is
not zero also yields a `GuestClockReading`: the guest's clock as that
timestamp states it (RFC 5905 §7.3: "Transmit Timestamp (xmt): Time at the
client when the request departed for the server"), for the gateway's guest
clock watcher. ntpdig, busybox and systemd-timesyncd put their clock there;
chronyd puts random bits, which the watcher tells apart (two successive
readings must agree). The era is not in the packet, so the reading is given
modulo one NTP era (RFC 5905 §6) and the watcher places it against the host's
time of arrival.
"""

from __future__ import annotations

from collections import Counter

from typing import Any

from gateway.core.flows import FlowTable
from gateway.core.guest_clock import GuestClockReading
from gateway.core.service import GuestAddress
from gateway.core.service import Forward

from plugins.ntp.packet import TIMESTAMP, TRANSMIT_OFFSET
from plugins.ntp.timestamps import ERA_NS, ntp_to_unix_ns

__all__ = ["TimeService", "NTP_PORT"]

NTP_PORT = 123
_NTP_HEADER_LEN = 48
_MODE_CLIENT = 3
_MODE_SERVER = 4


class TimeService:
    """UDP/123 on the gateway. Implements `gateway.edges.upstream.ForwardingService`."""

    port = NTP_PORT
    accepts_broadcast = False

    def __init__(self, flows: FlowTable | None = None, *, report_guest_clock: bool = False) -> None:
        self.flows = flows if flows is not None else FlowTable()
        #: return a `GuestClockReading` with each forwarded request (the gateway watches guest clocks)
        self.report_guest_clock = report_guest_clock
        self.drops: Counter[str] = Counter()
        self.forwarded = 0
        self.answered = 0

    def handle_datagram(self, source: GuestAddress, local_ip: bytes, payload: bytes, now: float) -> list[Any]:
        reason = _screen_request(payload)
        if reason is not None:
            self.drops[reason] += 1
            return []
        flow = self.flows.touch(source, local_ip, now)
        flow.last_request_len = len(payload)
        self.forwarded += 1
        if self.report_guest_clock:
            (transmit,) = TIMESTAMP.unpack_from(payload, TRANSMIT_OFFSET)
            if transmit:  # 0: the client sent no time (RFC 4330 §5 lets it)
                # any era will do: the watcher compares modulo one
                reading = GuestClockReading(source, ntp_to_unix_ns(transmit, 0), ERA_NS)
                return [Forward(self.port, flow, payload), reading]
        return [Forward(self.port, flow, payload)]

    def handle_upstream(self, flow_id: int, payload: bytes, now: float) -> bytes | None:
        flow = self.flows.get(flow_id)
        if flow is None:
            self.drops["ntp: reply on no open flow"] += 1
            return None
        if len(payload) < _NTP_HEADER_LEN or payload[0] & 7 != _MODE_SERVER:
            self.drops["ntp: upstream reply is not an NTP server reply (mode 4)"] += 1
            return None
        if len(payload) > flow.last_request_len:
            self.drops["ntp: upstream reply longer than the request (anti-amplification)"] += 1
            return None
        self.flows.refresh(flow, now)
        self.answered += 1
        return payload


def _screen_request(payload: bytes) -> str | None:
    """Why a guest datagram to port 123 is not forwarded, or None to forward it."""
    length = len(payload)
    if length < _NTP_HEADER_LEN:
        return "ntp: request shorter than 48 bytes"
    if length % 4:
        return "ntp: request length not a multiple of 4"
    version = (payload[0] >> 3) & 7
    if not 1 <= version <= 4:
        return f"ntp: version {version} (only 1-4 are answered)"
    mode = payload[0] & 7
    if mode != _MODE_CLIENT:
        return f"ntp: mode {mode} (only client requests, mode 3, are forwarded)"
    return None
