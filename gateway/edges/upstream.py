"""Forwarding a service's guest datagrams to an upstream server on the host, one socket per flow.

The sans-IO side is a `ForwardingService`: its `handle_datagram` returns
`Forward` requests, and `handle_upstream` screens what comes back. This module
is the trio edge that carries them: as vpnkit's UDP NAT, each flow gets its own
connected UDP socket, so the kernel matches replies to the flow (a connected
socket only accepts datagrams from the upstream address) and the upstream sees
one client port per guest conversation.

Sends never await: a datagram socket either takes the datagram now or it is
dropped and counted, like a full NIC queue. The flows' sockets sit in one epoll
set of the driver's own, and one task waits for that set to become readable and
drains every ready socket: a new flow costs a socket and a registration, not a
task, whatever the number of flows. There are no periodic wake-ups: the expiry
timer sleeps until the oldest flow's deadline, or not at all when there are no
flows.

Replies go back on the guest link the flow's latest request came in on: the
runtime hands each `Forward` to `submit` with its `GuestLink`, the driver keeps
the link with the flow's socket, and a reply is given, with that link, to the
sink (`UpstreamSink.upstream_reply`), which screens it and builds the guest's
frame through the sans-IO `Stack.receive_upstream`, as a replay does. Nothing
is routed by MAC address, so a guest that claims another's MAC cannot draw its
replies.

Running out of descriptors (EMFILE/ENFILE) or memory when opening a flow's
socket drops that request and counts it; the gateway goes on serving.

Timing, when the service's replies are residence-corrected (its plugin's
`Upstream.correct_reply`; the driver is then given the plugin's
`request_key`/`reply_key`, which tie a reply to its request): `submit` takes the time the
request's frame was read from the transport (Tr) and reads the clock just
before the send (Ts), and keeps Ts - Tr with the flow under the request's id;
each flow socket has kernel receive timestamps (SO_TIMESTAMPNS), so a reply's
arrival (Tu) is the kernel's, not this process's wake-up. The kernel's stamp is
CLOCK_REALTIME: it is converted at once to the monotonic clock the other edges
use (now_mono - (now_real - Tu), a span of microseconds on one clock), so that
each duration is taken on one clock. The realtime clock is read first and the
monotonic one right after (`monotonic_arrival_ns`): a pause between the two reads
(another thread holding the GIL, a preemption) then makes Tu later, which only
leaves a little of the residence uncorrected; read the other way round, it made
Tu earlier and took more out of the reply than the gateway held it, which
breaks the exchange's causality (a reply whose delay shrinks below the link's
and whose offset leaves its own error bound). The sink gets the arrival and the
request's residence with the reply and takes Tw itself, just before writing.

Closing finished flows waits until the replies of a wake-up are written (or the
table's limit is passed). The next flow's spare socket is made right after a send,
while the request is upstream: that time is inside the residence the correction
takes out, and a silent upstream still leaves a spare for the next new flow.
"""

from __future__ import annotations

import logging
import select
import socket
import struct
from collections import Counter
from time import monotonic_ns, time_ns
from typing import Callable, Protocol

import trio

from gateway.core.flows import Flow
from gateway.core.service import Forward, ForwardingService
from gateway.edges.transports.base import GuestLink

__all__ = ["UpstreamDriver", "UpstreamSink", "monotonic_arrival_ns"]

log = logging.getLogger("hostclock.upstream")

_MAX_DATAGRAM = 65535
#: events taken from the flows' epoll set per call
_EVENTS_PER_POLL = 256
#: Linux <asm-generic/socket.h>: SO_TIMESTAMPNS (SCM_TIMESTAMPNS for its control message)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)
#: a realtime/monotonic read pair further apart than this is read again (at most `_PAIR_READS` times)
_PAIR_SPREAD_NS = 20_000
_PAIR_READS = 3
#: requests of one flow timed at once (a client that sends a burst on one port); older ones are forgotten
_TIMED_PER_FLOW = 8


def monotonic_arrival_ns(kernel_realtime_ns: int, realtime_ns: Callable[[], int] | None = None,
                         monotonic: Callable[[], int] | None = None) -> int:
    """A kernel receive stamp (CLOCK_REALTIME, ns) on the monotonic clock; never earlier than it was.

    The span since the stamp is measured to a realtime reading taken *before* the monotonic
    one, so whatever delays the second read shortens the span: the result can only be late
    (a residence under-corrected), never early (over-corrected). A pair read far apart is read
    again, a bounded number of times, to keep it exact as well as safe. (The clocks default to
    `time.time_ns` and `time.monotonic_ns`, looked up at each call.)
    """
    realtime_ns = realtime_ns or time_ns
    monotonic = monotonic or monotonic_ns
    for _ in range(_PAIR_READS):
        real = realtime_ns()
        mono = monotonic()
        if realtime_ns() - real <= _PAIR_SPREAD_NS:
            break
    return mono - (real - kernel_realtime_ns)


class UpstreamSink(Protocol):
    """Where an `UpstreamDriver` hands the upstream's replies (the runtime's `Gateway`)."""

    def upstream_reply(self, port: int, flow_id: int, payload: bytes, link: GuestLink, now: float,
                       arrival_ns: int | None = None, request_residence_ns: int | None = None) -> None:
        """A datagram from the upstream on `flow_id` of the service on `port`, for the guest on `link`
        (the link the flow's latest request came in on). When the driver times exchanges:
        `arrival_ns` when it reached the gateway (monotonic ns) and `request_residence_ns` the
        residence of the request it answers (None if none was timed). Never raises."""
        ...


class _FlowSocket:
    """A flow's upstream socket and the guest link its latest request came in on."""

    __slots__ = ("flow_id", "sock", "link", "timed")

    def __init__(self, flow_id: int, sock: socket.socket, link: GuestLink) -> None:
        self.flow_id = flow_id
        self.sock = sock
        self.link = link
        #: request id -> its residence (Ts - Tr, ns), for the requests in flight
        self.timed: dict[bytes, int] = {}


class UpstreamDriver:
    """Carries a forwarding service's flows to `upstream` (host, port) and their replies back."""

    def __init__(self, service: ForwardingService, upstream: tuple[str, int], sink: UpstreamSink, *,
                 timing_keys: tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]] | None = None) -> None:
        """`timing_keys`: (request_key, reply_key) to time each exchange's residence with (the
        keys tie a reply to its request); None: exchanges are not timed."""
        self.service = service
        self.upstream = upstream
        self.sink = sink
        self.drops: Counter[str] = Counter()
        self._flows: dict[int, _FlowSocket] = {}
        #: the same entries by socket descriptor, for the epoll set
        self._by_fd: dict[int, _FlowSocket] = {}
        self._epoll: select.epoll | None = None
        #: a socket already connected to the upstream, for the next new flow. Real clients (ntplib,
        #: ntpdig, chronyd) use a new port for each query, so each query is a new flow: this takes
        #: making its socket off the request's path (the next spare is made right after the send)
        self._spare: socket.socket | None = None
        self._flows_changed = trio.Event()
        self._timed = timing_keys is not None
        self._request_key, self._reply_key = timing_keys or (None, None)

    def submit(self, request: Forward, link: GuestLink, read_ns: int | None = None) -> bool:
        """Send a guest datagram upstream on its flow's socket (opened on first use); the flow's
        replies go to `link`, the guest link the datagram came in on. `read_ns`: when its frame
        was read from the transport (monotonic ns), to time the request's residence. False (and
        counted) when it could not be sent."""
        entry = self._flows.get(request.flow.id)
        if entry is None:
            entry = self._open(request.flow, link)
            if entry is None:
                return False
        else:
            entry.link = link
        payload = request.payload
        try:
            handed_ns = monotonic_ns()  # Ts: just before the send, as the server reads T3 before its own
            entry.sock.send(payload)
        except BlockingIOError:
            self.drops["upstream: socket send buffer full"] += 1
            return False
        except OSError as e:  # e.g. ECONNREFUSED from an earlier ICMP error: nobody listens upstream
            self.drops[f"upstream: send failed ({e.strerror})"] += 1
            return False
        if read_ns is not None and self._timed:
            timed = entry.timed
            if len(timed) >= _TIMED_PER_FLOW:
                del timed[next(iter(timed))]  # the oldest: its reply is late or lost
            timed[self._request_key(payload)] = handed_ns - read_ns
        if len(self._flows) > self.service.flows.max_flows:
            self._close_finished_flows()  # evicted flows' sockets go now, replies or not: bounded
        if self._spare is None:
            self._make_spare()  # while the request is upstream: its residence is corrected either way
        return True

    def _make_spare(self) -> None:
        # the next new flow's socket (real clients use a new port per query), off the request's path
        try:
            self._spare = self._connect()
        except OSError:
            pass  # out of descriptors, say: the next new flow tries again (and counts its failure)

    def _housekeeping(self) -> None:
        """What waits until the replies are written: close finished flows, make the next spare."""
        self._close_finished_flows()
        if self._spare is None:
            self._make_spare()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._epoll = select.epoll()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._expire_idle_flows)
                nursery.start_soon(self._receive_replies)
                task_status.started()
        finally:
            self.service.flows.close_all()
            self._close_finished_flows()
            if self._spare is not None:
                self._spare.close()
                self._spare = None
            epoll, self._epoll = self._epoll, None
            trio.lowlevel.notify_closing(epoll.fileno())
            epoll.close()

    def _connect(self) -> socket.socket:
        """A new non-blocking socket connected to the upstream, in the epoll set.

        Raises OSError (nothing left open) when it cannot be made: no descriptor left (EMFILE,
        ENFILE), no memory (ENOBUFS, ENOMEM), an unreachable upstream.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if self._timed:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)  # Tu: the kernel's arrival time
            sock.connect(self.upstream)  # numeric address: no lookup, returns at once
            self._epoll.register(sock.fileno(), select.EPOLLIN)
        except BaseException:
            sock.close()
            raise
        return sock

    def _open(self, flow: Flow, link: GuestLink) -> _FlowSocket | None:
        """The flow's socket entry, from the spare or new; None (counted) if no socket can be made."""
        if self._epoll is None:
            raise RuntimeError("UpstreamDriver.submit() called before run() started")
        sock, self._spare = self._spare, None
        if sock is None:
            try:
                sock = self._connect()
            except OSError as e:
                self.drops[f"upstream: cannot open a flow socket ({e.strerror or e})"] += 1
                return None
        entry = _FlowSocket(flow.id, sock, link)
        self._by_fd[sock.fileno()] = entry
        self._flows[flow.id] = entry
        if len(self._flows) == 1:
            self._flows_changed.set()  # wake the expiry timer, which sleeps while there are no flows
        return entry

    async def _receive_replies(self) -> None:
        """Wait for any flow socket to be readable (the epoll set is itself pollable), drain them all."""
        epoll = self._epoll
        while True:
            await trio.lowlevel.wait_readable(epoll.fileno())
            self._drain_ready()
            self._housekeeping()

    def _drain_ready(self) -> None:
        """Pass on every reply queued on any flow socket now; never blocks."""
        by_fd = self._by_fd
        while True:
            events = self._epoll.poll(0, _EVENTS_PER_POLL)
            for fd, _ in events:
                entry = by_fd.get(fd)
                if entry is not None:
                    self._drain_socket(entry)
                else:
                    self._discard_unsolicited(fd)
            if len(events) < _EVENTS_PER_POLL:
                return

    def _drain_socket(self, entry: _FlowSocket) -> None:
        sock = entry.sock
        now = None
        timed = self._timed
        while True:
            try:
                payload, ancillary, _, _ = sock.recvmsg(_MAX_DATAGRAM, _ANCILLARY_SIZE)
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                self.drops["upstream: port unreachable (no server listening)"] += 1
                continue
            except OSError:
                return  # closed under us
            if now is None:
                now = trio.current_time()
            if timed:
                arrival_ns = None
                for level, kind, data in ancillary:
                    if kind == SO_TIMESTAMPNS and level == socket.SOL_SOCKET and len(data) >= _TIMESPEC.size:
                        seconds, nanoseconds = _TIMESPEC.unpack_from(data)
                        arrival_ns = monotonic_arrival_ns(seconds * 1_000_000_000 + nanoseconds)
                if arrival_ns is None:
                    arrival_ns = monotonic_ns()  # no kernel stamp: this wake-up, late and so safe
                residence = entry.timed.pop(self._reply_key(payload), None)
                self.sink.upstream_reply(self.service.port, entry.flow_id, payload, entry.link, now,
                                         arrival_ns, residence)
            else:
                self.sink.upstream_reply(self.service.port, entry.flow_id, payload, entry.link, now)

    def _discard_unsolicited(self, fd: int) -> None:
        """Read and drop what the upstream sent to the spare socket before any flow used it
        (left unread, it would keep the level-triggered epoll set ready: a busy loop)."""
        spare = self._spare
        if spare is None or spare.fileno() != fd:
            return
        while True:
            try:
                spare.recv(_MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError:
                continue  # a queued ICMP error: taken by this recv, try again
            self.drops["upstream: datagram on a socket no flow uses yet"] += 1

    async def _expire_idle_flows(self) -> None:
        flows = self.service.flows
        while True:
            deadline = flows.next_expiry()
            if deadline is None:
                self._flows_changed = trio.Event()
                await self._flows_changed.wait()
                continue
            await trio.sleep_until(deadline)
            flows.expire(trio.current_time())
            self._close_finished_flows()

    def _close_finished_flows(self) -> None:
        for flow in self.service.flows.take_closed():
            entry = self._flows.pop(flow.id, None)
            if entry is not None:
                sock = entry.sock
                fd = sock.fileno()
                self._by_fd.pop(fd, None)
                if self._epoll is not None:
                    try:
                        self._epoll.unregister(fd)
                    except OSError:
                        pass
                sock.close()

    @property
    def open_sockets(self) -> int:
        return len(self._flows)
