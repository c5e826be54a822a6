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

Both are pure functions of the input, so a replay with an in-process answerer
is byte-identical run after run.

Every guest frame either gets a frame back or is counted in a drop reason;
one that gets neither is counted as "replay: no answer and no drop reason".

`ReplayResult.frames` tells, record by record, what became of each: skipped
(and why), or fed to the gateway, with the frames it sent in answer and the
drop reasons it counted meanwhile, so that a test can hold each frame to what
the RFCs say must happen to it.

Which frames are input: only what a guest sent. A record is skipped, and
counted by reason, if its link type is not Ethernet, if the capture's snap
length cut it, or if its source MAC is the gateway's ("not from a guest": a
capture of the guest's link holds both directions). The gateway's own NTP
replies in the capture are still used: their capture times are the client's
T4 for the exchange summary (see `gateway.replay.engine.report`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol

from gateway.app.assembly import assemble
from gateway.app.config import Config
from gateway.core.config import ConfigError
from gateway.core.plugin import ExchangeTimes, ReplayAnswerer, Upstream
from gateway.core.service import Forward
from gateway.core.stack import Stack
from gateway.core.udp import parse_frame
from gateway.edges.pcap_reader import LINKTYPE_ETHERNET, CaptureRecord

__all__ = ["replay", "ReplayResult", "FrameOutcome", "Exchange", "ReplayClock", "RecordedClock", "FixedClock", "parse_clock"]

_NS_PER_S = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


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


# -- results ---------------------------------------------------------------------------------

@dataclass(slots=True)
class Exchange:
    """One forwarded request the gateway answered, with what the client's offset/delay computation needs.

    Times ending in `_ns` are Unix ns on the capture's clock (the client's).
    """

    request_number: int
    #: the forwarding service's port (123 for NTP)
    port: int
    guest: str
    request_ns: int
    #: what the client would read from the exchange (T1 as the request claims it, T2, T3)
    times: ExchangeTimes
    #: when the reply would be on the client's link, on the capture's clock
    reply_capture_ns: int
    #: the capture time of the gateway's own reply in the input capture, if it has one
    recorded_reply_ns: int | None = None
    #: the capture time of the record after the request, if any
    next_frame_ns: int | None = None


@dataclass(slots=True)
class FrameOutcome:
    """What became of one record of the capture."""

    #: the record's 1-based number in the capture, as tcpdump and tshark number them
    number: int
    #: why the record was not fed to the gateway (not a guest's frame), or None
    skipped: str | None = None
    #: the frames the gateway sent while handling it, in order (a forwarded request's reply included)
    sent: list[bytes] = field(default_factory=list)
    #: the drop reasons counted while handling it (a port unreachable is sent and counted)
    drops: list[str] = field(default_factory=list)


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
    #: requests the forwarding services forwarded, and replies they passed back
    forwarded: int = 0
    answered: int = 0
    flows_opened: int = 0
    flows_evicted: int = 0
    flows_expired: int = 0
    exchanges: list[Exchange] = field(default_factory=list)
    #: every frame the gateway sent to the guest: (Unix ns on the replay clock, frame)
    output: list[tuple[int, bytes]] = field(default_factory=list)
    #: what became of each record read, in capture order
    frames: list[FrameOutcome] = field(default_factory=list)


# -- the engine --------------------------------------------------------------------------------

def replay(records: Iterable[CaptureRecord], config: Config, clock: ReplayClock,
           upstream: ReplayAnswerer | None = None) -> ReplayResult:
    """Feed every guest frame of `records` to a fresh gateway; what it sent and dropped.

    `upstream` answers every forwarding service's requests; None (the default) takes each one's
    plugin's in-process answerer.
    """
    assembly = assemble(config)  # the stack and services as `hostclock run` builds them
    stack = assembly.stack
    forwarders = stack.forwarders
    answerers = _answerers(assembly.upstreams, forwarders, upstream)
    described = {a.description for a in answerers.values()}
    result = ReplayResult(clock=clock.description, upstream=", ".join(sorted(described)) or "none")
    output = result.output
    skipped = result.skipped
    gateway_mac = stack.mac
    awaiting_next_frame: list[Exchange] = []
    awaiting_recorded_reply: dict[tuple[int, bytes, int, bytes], Exchange] = {}

    for record in records:
        result.frames_read += 1
        fate = FrameOutcome(record.number)
        result.frames.append(fate)
        ts_ns = record.ts_ns
        for exchange in awaiting_next_frame:
            exchange.next_frame_ns = ts_ns
        awaiting_next_frame.clear()
        now_ns = clock.at(ts_ns)
        frame = record.data
        if record.linktype != LINKTYPE_ETHERNET:
            fate.skipped = f"link type {record.linktype} is not Ethernet (1)"
            skipped[fate.skipped] += 1
            continue
        if len(frame) < record.wirelen:
            fate.skipped = "cut short by the capture's snap length"
            skipped[fate.skipped] += 1
            continue
        if frame[6:12] == gateway_mac:
            fate.skipped = "not from a guest (sent by the gateway)"
            skipped[fate.skipped] += 1
            key = _reply_key(frame, assembly.upstreams)
            if key is not None:
                exchange = awaiting_recorded_reply.pop(key, None)
                if exchange is not None:
                    exchange.recorded_reply_ns = ts_ns
            continue
        result.frames_from_guest += 1
        now = ts_ns / _NS_PER_S
        # the runtime's expiry timer would have closed the flows idle for the timeout by now
        for service in forwarders.values():
            service.flows.expire(now)
        sent_before = len(output)
        drops_before = _drop_counts(stack, answerers)
        try:
            outputs = stack.receive_frame(frame, now)
        except Exception as e:  # a stack bug must not end the replay: count it, show it, go on
            reason = f"replay: the gateway raised {type(e).__name__} (a bug)"
            result.drops[reason] += 1
            fate.drops.append(reason)
            continue
        for item in outputs:  # frames for the guest, or Forwards (`gateway.core.service.Output`)
            if type(item) is bytes:
                output.append((now_ns, item))
                continue
            answerer = answerers.get(item.port)
            if answerer is None:
                reason = f"replay: UDP port {item.port} forwards, but nothing answers it here"
                result.drops[reason] += 1
                fate.drops.append(reason)
                continue
            exchange = _forward(item, record, now_ns, now, stack, answerer, assembly.upstreams.get(item.port),
                                output)
            if exchange is not None:
                result.exchanges.append(exchange)
                awaiting_next_frame.append(exchange)
                request_key = assembly.upstreams[item.port].request_key
                if request_key is not None:
                    guest = item.flow.guest
                    awaiting_recorded_reply[(item.port, guest.ip, guest.port, request_key(item.payload))] = exchange
        for port, service in forwarders.items():
            closed = service.flows.take_closed()
            if port in answerers:
                answerers[port].flows_closed(closed)
        fate.sent = [sent for _, sent in output[sent_before:]]
        fate.drops += sorted((_drop_counts(stack, answerers) - drops_before).elements())
        if fate.sent:
            result.frames_answered += 1
        elif not fate.drops:
            reason = "replay: no answer and no drop reason (a bug)"
            result.drops[reason] += 1
            fate.drops.append(reason)

    for answerer in {id(a): a for a in answerers.values()}.values():
        answerer.close()
    result.drops.update(stack.drop_counts(*_answerer_drops(answerers)))
    for service in forwarders.values():
        flows = service.flows
        result.flows_opened += flows.opened
        result.flows_evicted += flows.evicted
        result.flows_expired += flows.expired
    result.forwarded = sum(getattr(s, "forwarded", 0) for s in forwarders.values())
    result.answered = sum(getattr(s, "answered", 0) for s in forwarders.values())
    return result


def _answerers(upstreams: dict[int, Upstream], forwarders: dict, given: ReplayAnswerer | None) -> dict[int, ReplayAnswerer]:
    """Who answers each forwarding port: `given` for all, or each plugin's in-process answerer."""
    if given is not None:
        return {port: given for port in forwarders}
    answerers = {}
    for port in forwarders:
        upstream = upstreams.get(port)
        if upstream is None or upstream.replay_answerer is None:
            raise ConfigError(f"UDP port {port}'s plugin has no in-process answerer for a replay; "
                              "give --upstream HOST:PORT (a real server on loopback)")
        answerers[port] = upstream.replay_answerer()
    return answerers


def _answerer_drops(answerers: dict[int, ReplayAnswerer]) -> list[Counter[str]]:
    return [a.drops for a in {id(a): a for a in answerers.values()}.values()]


def _drop_counts(stack: Stack, answerers: dict[int, ReplayAnswerer]) -> Counter[str]:
    """Every drop counted so far, by reason: by the stack, its services and the answerers."""
    return stack.drop_counts(*_answerer_drops(answerers))


def _forward(request: Forward, record: CaptureRecord, now_ns: int, now: float, stack: Stack,
             answerer: ReplayAnswerer, upstream: Upstream | None, output: list[tuple[int, bytes]]) -> Exchange | None:
    """Answer one forwarded request, back through the stack as the runtime does; the exchange if answered."""
    flow = request.flow
    reply, after_ns = answerer.answer(flow, request.payload, now_ns)
    if reply is None:
        return None
    frame = stack.receive_upstream(request.port, flow.id, reply, now + after_ns / _NS_PER_S)
    if frame is None:
        return None
    output.append((now_ns + after_ns, frame))
    if upstream is None or upstream.exchange_times is None:
        return None  # answered, but no plugin says how to read its times
    guest = flow.guest
    passed_back = parse_frame(frame).payload
    times = upstream.exchange_times(request.payload, passed_back, record.ts_ns, now_ns)
    return Exchange(request_number=record.number, port=request.port,
                    guest=f"{'.'.join(map(str, guest.ip))}:{guest.port}", request_ns=record.ts_ns,
                    times=times, reply_capture_ns=record.ts_ns + after_ns)


def _reply_key(frame: bytes, upstreams: dict[int, Upstream]) -> tuple[int, bytes, int, bytes] | None:
    """(port, guest IP, guest port, reply key) of a forwarding service's reply frame, else None."""
    datagram = parse_frame(frame)
    if datagram is None:
        return None
    upstream = upstreams.get(datagram.src_port)
    if upstream is None or upstream.reply_key is None:
        return None
    try:
        key = upstream.reply_key(datagram.payload)
    except (ValueError, IndexError):
        return None
    return datagram.src_port, datagram.dst_ip, datagram.dst_port, key
