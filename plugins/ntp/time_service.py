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
"""

from __future__ import annotations

from collections import Counter

from gateway.core.flows import FlowTable
from gateway.core.service import GuestAddress
from gateway.core.service import Forward

__all__ = ["TimeService", "NTP_PORT"]

NTP_PORT = 123
_NTP_HEADER_LEN = 48
_MODE_CLIENT = 3
_MODE_SERVER = 4


class TimeService:
    """UDP/123 on the gateway. Implements `gateway.edges.upstream.ForwardingService`."""

    port = NTP_PORT
    accepts_broadcast = False

    def __init__(self, flows: FlowTable | None = None) -> None:
        self.flows = flows if flows is not None else FlowTable()
        self.drops: Counter[str] = Counter()
        self.forwarded = 0
        self.answered = 0

    def handle_datagram(self, source: GuestAddress, local_ip: bytes, payload: bytes, now: float) -> list[Forward]:
        reason = _screen_request(payload)
        if reason is not None:
            self.drops[reason] += 1
            return []
        flow = self.flows.touch(source, local_ip, now)
        flow.last_request_len = len(payload)
        self.forwarded += 1
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
