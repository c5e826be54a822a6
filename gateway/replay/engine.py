"""Replaying a capture through the gateway, sans-IO: guest frames in, the gateway's answers out.

`replay(records, config, clock, upstream)` builds the stack and services as
`hostclock run` does (`gateway.app.assembly.build_stack`), drives
`Stack.receive_frame(frame, now)` with each guest frame and its capture
timestamp (seconds) as `now`, as the runtime does with a live frame, answers
the time service's `Forward` requests with `upstream`, and hands each answer
back through `Stack.receive_upstream`, the one return path the runtime also
uses for a live upstream's reply (`Gateway.upstream_reply`), so a replay
screens and frames answers exactly as a live gateway does:

* `EmbeddedResponder` (the default): the sans-IO `plugins.ntp.Responder`,
  in-process, reading `clock`. A request captured at time t on the replay
  clock gets receive timestamp T2 = t and transmit timestamp T3 = t +
  `PROCESSING_DELAY_NS` (10 µs), and its reply frame is stamped T3.
* `gateway.replay.engine.upstream.UdpUpstream`: a real SNTP server on loopback (the
  only mode with I/O); its reply frame is stamped t + the measured round trip.

Frames the stack answers itself (ARP, ping, ICMP port unreachable) are stamped t.

The replay clock (`--clock`) maps capture time to the time the gateway sees:

* `RecordedClock` ("recorded"): the capture's own timestamps;
* `FixedClock` ("fixed:ISO8601"): the first record of the capture is at the
  given instant and time advances with the capture's relative timestamps, so
  the output does not depend on when the capture was taken.

Both are pure functions of the input, so a replay with the embedded responder
is byte-identical run after run. The responder's state is fixed for the same
reason: synchronised, no leap second, precision 2^`REPLAY_PRECISION`, the
reference time refreshed (as the live server does) when a request comes a
second or more after the last refresh.

Every guest frame either gets a frame back or is counted in a drop reason;
one that gets neither is counted as "replay: no answer and no drop reason".

Which frames are input: only what a guest sent. A record is skipped, and
counted by reason, if its link type is not Ethernet, if the capture's snap
length cut it, or if its source MAC is the gateway's ("not from a guest": a
capture of the guest's link holds both directions). The gateway's own NTP
replies in the capture are still used: their capture times are the client's
T4 for the exchange summary (see `gateway.replay.engine.report`).
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol

from plugins.ntp.kernel_state import KernelTimeState, LeapPending
from plugins.ntp.responder import Responder, ServerState
from plugins.ntp.timestamps import unix_ns_to_ntp
from plugins.ntp.time_service import NTP_PORT

from gateway.app.assembly import build_stack
from gateway.app.config import Config, ResponderConfig
from gateway.core.flows import Flow
from gateway.edges.pcap_reader import LINKTYPE_ETHERNET, CaptureRecord
from gateway.core.stack import Stack
from gateway.core.service import Forward

__all__ = ["replay", "ReplayResult", "NtpExchange", "ReplayClock", "RecordedClock", "FixedClock",
           "parse_clock", "Upstream", "EmbeddedResponder", "PROCESSING_DELAY_NS", "REPLAY_PRECISION"]

#: the embedded responder's transmit timestamp comes this long after its receive timestamp
PROCESSING_DELAY_NS = 10_000
#: the precision the replayed responder announces (about 1 µs), fixed for reproducible output
REPLAY_PRECISION = -20

_NS_PER_S = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ETH_IPV4 = b"\x08\x00"
_UDP_PORTS = struct.Struct("!HH")
_UDP_LENGTH = struct.Struct("!H")
#: where UDP starts in a frame the stack built (Ethernet 14 + a 20-byte IPv4 header: it sends no options)
_REPLY_UDP_START = 34
_NTP_PORT = 123
_NTP_HEADER_LEN = 48
#: the host clock as the replayed responder serves it: synchronised, no leap second pending
_SYNCHRONISED = KernelTimeState(synchronised=True, leap=LeapPending.NONE, maxerror_us=None, esterror_us=None)


# -- clocks ------------------------------------------------------------------------------

class ReplayClock(Protocol):
    #: for the summary: "recorded", "fixed:2024-01-01T00:00:00+00:00"
    description: str

    def at(self, capture_ns: int) -> int:
        """The replay clock's time (Unix ns) when the capture's clock read `capture_ns`."""
        ...


class RecordedClock:
    """The capture's own timestamps."""

    description = "recorded"

    def at(self, capture_ns: int) -> int:
        return capture_ns


class FixedClock:
    """`start_ns` at the first call (the capture's first record), then advancing with the capture.

    It remembers the first record, so it serves one replay: `parse_clock` makes a new one each time.
    """

    def __init__(self, start_ns: int) -> None:
        if start_ns < 0:
            raise ValueError("the fixed clock cannot start before 1970 (pcap timestamps are unsigned)")
        self.start_ns = start_ns
        self.description = "fixed:" + _format_utc(start_ns)
        self._origin_ns: int | None = None

    def at(self, capture_ns: int) -> int:
        if self._origin_ns is None:
            self._origin_ns = capture_ns
        return self.start_ns + (capture_ns - self._origin_ns)


def parse_clock(text: str) -> ReplayClock:
    """'recorded' or 'fixed:ISO8601' (no zone given means UTC); ValueError with one line otherwise."""
    if text == "recorded":
        return RecordedClock()
    kind, sep, when = text.partition(":")
    if kind != "fixed" or not sep:
        raise ValueError(f"clock {text!r}: choose 'recorded' or 'fixed:ISO8601' (e.g. fixed:2024-01-01T00:00:00Z)")
    try:
        moment = datetime.fromisoformat(when)
    except ValueError:
        raise ValueError(f"clock {text!r}: {when!r} is not an ISO 8601 time (e.g. 2024-01-01T00:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return FixedClock((moment - _EPOCH) // timedelta(microseconds=1) * 1000)


def _format_utc(ns: int) -> str:
    moment = _EPOCH + timedelta(microseconds=ns // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % _NS_PER_S:09d}Z"


# -- upstreams -------------------------------------------------------------------------

class Upstream(Protocol):
    """What answers the time service's forwarded requests during a replay."""

    #: for the summary
    description: str
    #: requests not answered, by reason
    drops: Counter[str]

    def answer(self, flow: Flow, request: bytes, now_ns: int) -> tuple[bytes | None, int]:
        """The reply to `request` sent on `flow` at `now_ns` (replay clock), and how many ns later it came."""
        ...

    def flows_closed(self, flows: list[Flow]) -> None:
        """The time service closed these flows (release what belongs to them)."""
        ...

    def close(self) -> None: ...


class EmbeddedResponder:
    """The SNTP responder (`plugins.ntp.Responder`) answering in-process from the replay clock."""

    description = "embedded"

    def __init__(self, config: ResponderConfig) -> None:
        self._config = config
        self.responder = Responder(self._state(reference_ns=0))
        self.drops = self.responder.drops
        self._refreshed_ns: int | None = None

    def _state(self, reference_ns: int) -> ServerState:
        return ServerState.from_config(self._config, _SYNCHRONISED, precision=REPLAY_PRECISION,
                                       reference_ntp=unix_ns_to_ntp(reference_ns))

    def answer(self, flow: Flow, request: bytes, now_ns: int) -> tuple[bytes | None, int]:
        if self._refreshed_ns is None or not -_NS_PER_S < now_ns - self._refreshed_ns < _NS_PER_S:
            # as the live server: the reference time is when the state was last refreshed
            self.responder.state = self._state(reference_ns=now_ns)
            self._refreshed_ns = now_ns
        transmit_ntp = unix_ns_to_ntp(now_ns + PROCESSING_DELAY_NS)
        reply = self.responder.respond(request, unix_ns_to_ntp(now_ns), lambda: transmit_ntp)
        return reply, PROCESSING_DELAY_NS

    def flows_closed(self, flows: list[Flow]) -> None:
        pass

    def close(self) -> None:
        pass


# -- results ---------------------------------------------------------------------------------

@dataclass(slots=True)
class NtpExchange:
    """One request the gateway answered, with what the client's offset/delay computation needs.

    Times ending in `_ns` are Unix ns on the capture's clock (the client's),
    except `replay_now_ns`, on the replay clock.
    """

    request_number: int
    guest: str
    request_ns: int
    request: bytes
    reply: bytes
    #: the replay clock's time when the request arrived (the pivot to read the reply's timestamps)
    replay_now_ns: int
    #: when the reply would be on the client's link, on the capture's clock
    reply_capture_ns: int
    #: the capture time of the gateway's own reply in the input capture, if it has one
    recorded_reply_ns: int | None = None
    #: the capture time of the record after the request, if any
    next_frame_ns: int | None = None


@dataclass
class ReplayResult:
    clock: str
    upstream: str
    frames_read: int = 0
    #: guest frames fed to the stack
    frames_from_guest: int = 0
    #: records not fed to the stack, by reason
    skipped: Counter[str] = field(default_factory=Counter)
    #: guest frames that got at least one frame back
    frames_answered: int = 0
    #: guest frames dropped (by the stack, a service, the upstream), by reason
    drops: Counter[str] = field(default_factory=Counter)
    ntp_forwarded: int = 0
    ntp_answered: int = 0
    flows_opened: int = 0
    flows_evicted: int = 0
    flows_expired: int = 0
    exchanges: list[NtpExchange] = field(default_factory=list)
    #: every frame the gateway sent to the guest: (Unix ns on the replay clock, frame)
    output: list[tuple[int, bytes]] = field(default_factory=list)


# -- the engine --------------------------------------------------------------------------------

def replay(records: Iterable[CaptureRecord], config: Config, clock: ReplayClock, upstream: Upstream) -> ReplayResult:
    """Feed every guest frame of `records` to a fresh gateway; what it sent and dropped."""
    stack = build_stack(config)  # the stack and services as `hostclock run` builds them
    time_service = stack.services[NTP_PORT]
    result = ReplayResult(clock=clock.description, upstream=upstream.description)
    output = result.output
    skipped = result.skipped
    gateway_mac = stack.mac
    awaiting_next_frame: list[NtpExchange] = []
    awaiting_recorded_reply: dict[tuple[bytes, int, bytes], NtpExchange] = {}

    for record in records:
        result.frames_read += 1
        ts_ns = record.ts_ns
        for exchange in awaiting_next_frame:
            exchange.next_frame_ns = ts_ns
        awaiting_next_frame.clear()
        now_ns = clock.at(ts_ns)
        frame = record.data
        if record.linktype != LINKTYPE_ETHERNET:
            skipped[f"link type {record.linktype} is not Ethernet (1)"] += 1
            continue
        if len(frame) < record.wirelen:
            skipped["cut short by the capture's snap length"] += 1
            continue
        if frame[6:12] == gateway_mac:
            skipped["not from a guest (sent by the gateway)"] += 1
            key = _ntp_reply_key(frame)
            if key is not None:
                exchange = awaiting_recorded_reply.pop(key, None)
                if exchange is not None:
                    exchange.recorded_reply_ns = ts_ns
            continue
        result.frames_from_guest += 1
        now = ts_ns / _NS_PER_S
        # the runtime's expiry timer would have closed the flows idle for the timeout by now
        time_service.flows.expire(now)
        sent_before = len(output)
        dropped_before = _dropped(stack, upstream)
        try:
            outputs = stack.receive_frame(frame, now)
        except Exception as e:  # a stack bug must not end the replay: count it, show it, go on
            result.drops[f"replay: the gateway raised {type(e).__name__} (a bug)"] += 1
            continue
        for item in outputs:
            if type(item) is bytes:
                output.append((now_ns, item))
            elif isinstance(item, Forward):
                exchange = _forward(item, record, now_ns, now, stack, upstream, output)
                if exchange is not None:
                    result.exchanges.append(exchange)
                    awaiting_next_frame.append(exchange)
                    awaiting_recorded_reply[(item.flow.guest.ip, item.flow.guest.port, item.payload[40:48])] = exchange
            else:
                result.drops[f"replay: a service returned {type(item).__name__} (a bug)"] += 1
        upstream.flows_closed(time_service.flows.take_closed())
        if len(output) > sent_before:
            result.frames_answered += 1
        elif _dropped(stack, upstream) == dropped_before:
            result.drops["replay: no answer and no drop reason (a bug)"] += 1

    upstream.close()
    result.drops.update({str(reason): n for reason, n in stack.drops.items()})
    for service in stack.services.values():
        result.drops.update(service.drops)
    result.drops.update(upstream.drops)
    result.ntp_forwarded, result.ntp_answered = time_service.forwarded, time_service.answered
    flows = time_service.flows
    result.flows_opened, result.flows_evicted, result.flows_expired = flows.opened, flows.evicted, flows.expired
    return result


def _dropped(stack: Stack, upstream: Upstream) -> int:
    """Every drop counted so far, by the stack, its services and the upstream."""
    return (sum(stack.drops.values()) + sum(sum(s.drops.values()) for s in stack.services.values())
            + sum(upstream.drops.values()))


def _forward(request: Forward, record: CaptureRecord, now_ns: int, now: float, stack: Stack, upstream: Upstream,
             output: list[tuple[int, bytes]]) -> NtpExchange | None:
    """Answer one forwarded request, back through the stack as the runtime does; the exchange if answered."""
    flow = request.flow
    reply, after_ns = upstream.answer(flow, request.payload, now_ns)
    if reply is None:
        return None
    frame = stack.receive_upstream(request.port, flow.id, reply, now + after_ns / _NS_PER_S)
    if frame is None:
        return None
    output.append((now_ns + after_ns, frame))
    guest = flow.guest
    udp_length = _UDP_LENGTH.unpack_from(frame, _REPLY_UDP_START + 4)[0]
    payload = frame[_REPLY_UDP_START + 8:_REPLY_UDP_START + udp_length]
    return NtpExchange(request_number=record.number, guest=f"{'.'.join(map(str, guest.ip))}:{guest.port}",
                       request_ns=record.ts_ns, request=request.payload, reply=payload, replay_now_ns=now_ns,
                       reply_capture_ns=record.ts_ns + after_ns)


def _ntp_reply_key(frame: bytes) -> tuple[bytes, int, bytes] | None:
    """(guest IP, guest port, originate timestamp) of an NTP reply frame from port 123, else None."""
    if len(frame) < 34 or frame[12:14] != _ETH_IPV4 or frame[14] >> 4 != 4 or frame[23] != 17:
        return None
    udp_start = 14 + (frame[14] & 0x0F) * 4
    payload_start = udp_start + 8
    if len(frame) < payload_start + _NTP_HEADER_LEN:
        return None
    src_port, dst_port = _UDP_PORTS.unpack_from(frame, udp_start)
    if src_port != _NTP_PORT:
        return None
    return frame[30:34], dst_port, frame[payload_start + 24:payload_start + 32]
