"""The time service: UDP/123 on the gateway, forwarded to an SNTP server on the host's loopback.

Sans-IO. A guest's NTP request becomes a `Forward` on the guest's flow (see
`gateway.core.flows`); the upstream's reply comes back through `handle_upstream`
and goes to the guest from gateway:123, to the port it asked from.

The gateway screens both directions (`plugins.ntp.packet.request_rejection`,
`reply_rejection`), so that even an upstream that speaks more than SNTP (an
ntpd with mode 6/7 enabled) is only reachable as an SNTP server: only client
requests (mode 3) of versions 1–4 and SNTP sizes are forwarded, and a reply is
passed back only if it is a server reply (mode 4) no longer than the request it
answers. Each guest may have at most `[ntp] max_in_flight` requests awaiting the
upstream (`plugins.ntp.in_flight`), so that a flooding guest cannot fill the
server's queue and have the kernel drop other guests' requests. A per-guest rate
limit, chrony's (`plugins.ntp.rate_limit`), can be turned on (`[ntp] ratelimit =
true`); it is off by default, as chrony's is. With `ratelimit_kod`, a guest over the
limit is told so now and then with a Kiss-o'-Death RATE (`plugins.ntp.packet.kiss_of_death`),
built here: it never reaches the upstream.

While `report_guest_clock` is set (by a stack that watches guest clocks,
`gateway.core.guest_clock.GuestClockReporter`), each forwarded request whose
transmit timestamp is not zero also yields a `GuestClockReading`: the guest's
clock as that timestamp states it (RFC 5905 §7.3: "Transmit Timestamp (xmt):
Time at the client when the request departed for the server"). ntpdig,
busybox and systemd-timesyncd put their clock there; chronyd puts random bits,
which the watcher tells apart (two successive readings must agree). The era is
not in the packet, so the reading is given modulo one NTP era (RFC 5905 §6)
and the watcher places it against the host's time of arrival.

The residence-time correction (`plugins.ntp.residence`) is `correct_reply`: the
edges measure how long an exchange stayed inside the gateway and the service
moves the reply's timestamps to the gateway's edges, counting the replies it
corrected and, by reason, those it passed untouched. (The edges tie a reply to
its request with the plugin's `plugins.ntp.exchange.request_key`/`reply_key`.)
"""

from __future__ import annotations

from collections import Counter

from typing import Any

from gateway.core.flows import FlowTable
from gateway.core.guest_clock import GuestClockReading
from gateway.core.service import Forward, GuestAddress

from plugins.ntp.packet import TIMESTAMP, TRANSMIT_OFFSET, kiss_of_death, reply_rejection, request_rejection
from plugins.ntp.residence import correct_reply
from plugins.ntp.timestamps import ERA_NS, ntp_to_unix_ns
from plugins.ntp.in_flight import InFlight
from plugins.ntp.rate_limit import RateLimit

__all__ = ["TimeService", "NTP_PORT", "RATE_LIMITED", "TOO_MANY_IN_FLIGHT"]

NTP_PORT = 123
#: no request of the flow was timed with the reply's origin timestamp (or the edge timed none)
NO_TIMED_REQUEST = "ntp residence: no timed request matches the reply, passed uncorrected"
RATE_LIMITED = "ntp: over the guest's rate limit ([ntp] ratelimit)"
TOO_MANY_IN_FLIGHT = "ntp: the guest already has max_in_flight requests awaiting the upstream ([ntp] max_in_flight)"


class TimeService:
    """UDP/123 on the gateway. Implements `gateway.core.service.ForwardingService`."""

    port = NTP_PORT
    accepts_broadcast = False

    def __init__(self, flows: FlowTable | None = None, rate_limit: RateLimit | None = None,
                 in_flight: InFlight | None = None) -> None:
        self.flows = flows if flows is not None else FlowTable()
        #: per-guest limit on requests forwarded (`plugins.ntp.rate_limit`), or None (the default: off)
        self.rate_limit = rate_limit
        #: per-guest cap on requests awaiting the upstream (`plugins.ntp.in_flight`), or None (no cap)
        self.in_flight = in_flight
        #: also return a `GuestClockReading` with each forwarded request (set by a watching stack)
        self.report_guest_clock = False
        self.drops: Counter[str] = Counter()
        self.forwarded = 0
        self.answered = 0
        #: Kiss-o'-Death RATE replies sent to guests over the rate limit (`ratelimit_kod`)
        self.kiss_of_death_sent = 0
        #: replies whose timestamps were moved to the gateway's edges
        self.residence_corrected = 0
        #: replies passed without the correction, by reason
        self.residence_uncorrected: Counter[str] = Counter()

    def handle_datagram(self, source: GuestAddress, local_ip: bytes, payload: bytes, now: float) -> list[Any]:
        reason = request_rejection(payload)
        if reason is not None:
            self.drops[reason] += 1
            return []
        if self.rate_limit is not None and not self.rate_limit.allow(source.mac + source.ip, now):
            if self.rate_limit.kod and self.rate_limit.kiss_due(source.mac + source.ip, now):
                self.kiss_of_death_sent += 1
                return [kiss_of_death(payload, b"RATE")]  # same size as the request: nothing amplified
            self.drops[RATE_LIMITED] += 1
            return []
        if self.in_flight is not None and not self.in_flight.admit(source.mac + source.ip, now):
            self.drops[TOO_MANY_IN_FLIGHT] += 1
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

    def not_forwarded(self, request: Forward) -> None:
        """The gateway could not send `request` upstream (no upstream yet, a full send buffer): its
        place under `max_in_flight` goes at once, not when it would have timed out."""
        if self.in_flight is not None:
            self.in_flight.abandoned(request.flow.guest.mac + request.flow.guest.ip)

    def handle_upstream(self, flow_id: int, payload: bytes, now: float) -> bytes | None:
        flow = self.flows.get(flow_id)
        if flow is None:
            self.drops["ntp: reply on no open flow"] += 1
            return None
        reason = reply_rejection(payload, flow.last_request_len)
        if reason is not None:
            self.drops[reason] += 1
            return None
        self.flows.refresh(flow, now)
        if self.in_flight is not None:
            self.in_flight.answered(flow.guest.mac + flow.guest.ip)
        self.answered += 1
        return payload

    def correct_reply(self, payload: bytes, request_residence_ns: int | None, reply_residence_ns: int) -> bytes:
        """`payload` (a screened reply) with its receive and transmit timestamps moved to the
        gateway's edges, or `payload` itself, counted by reason, when it is not corrected."""
        if request_residence_ns is None:
            self.residence_uncorrected[NO_TIMED_REQUEST] += 1
            return payload
        corrected, why = correct_reply(payload, request_residence_ns, reply_residence_ns)
        if why is None:
            self.residence_corrected += 1
        else:
            self.residence_uncorrected[why] += 1
        return corrected

    def counters(self) -> dict[str, object]:
        """The service's figures for the gateway's counters."""
        return {"ntp_forwarded": self.forwarded, "ntp_answered": self.answered, "flows_open": len(self.flows),
                "ntp_kiss_of_death_sent": self.kiss_of_death_sent,
                "ntp_residence_corrected": self.residence_corrected,
                "ntp_residence_uncorrected": dict(self.residence_uncorrected)}
