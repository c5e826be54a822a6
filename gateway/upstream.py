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
"""

from __future__ import annotations

import logging
import select
import socket
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

import trio

from .flows import Flow, FlowTable
from .service import GuestSink, UdpService

__all__ = ["Forward", "ForwardingService", "UpstreamDriver"]

log = logging.getLogger("hostclock.upstream")

_MAX_DATAGRAM = 65535
#: events taken from the flows' epoll set per call
_EVENTS_PER_POLL = 256


@dataclass(frozen=True, slots=True)
class Forward:
    """A service's request: send `payload` upstream on `flow`."""

    port: int  # the service's gateway port
    flow: Flow
    payload: bytes


class ForwardingService(UdpService, Protocol):
    flows: FlowTable

    def handle_upstream(self, flow_id: int, payload: bytes, now: float) -> bytes | None:
        """Screen an upstream reply on a flow; the payload to pass to the guest, or None to drop it."""
        ...


class UpstreamDriver:
    """Carries a forwarding service's flows to `upstream` (host, port) and their replies back."""

    def __init__(self, service: ForwardingService, upstream: tuple[str, int], sink: GuestSink) -> None:
        self.service = service
        self.upstream = upstream
        self.sink = sink
        self.drops: Counter[str] = Counter()
        self._sockets: dict[int, socket.socket] = {}
        #: flow sockets by descriptor, for the epoll set: fd -> (flow id, socket)
        self._by_fd: dict[int, tuple[int, socket.socket]] = {}
        self._epoll: select.epoll | None = None
        #: a socket already connected to the upstream, for the next new flow. Real clients (ntplib,
        #: ntpdig, chronyd) use a new port for each query, so each query is a new flow: this takes
        #: making its socket off the request's path (the next spare is made once a reply has gone to the guest)
        self._spare: socket.socket | None = None
        self._flows_changed = trio.Event()

    def submit(self, request: Forward) -> None:
        """Send a guest datagram upstream on its flow's socket (opened on first use)."""
        flow = request.flow
        sock = self._sockets.get(flow.id)
        if sock is None:
            sock = self._open(flow)
            if sock is None:
                return
        try:
            sock.send(request.payload)
        except BlockingIOError:
            self.drops["upstream: socket send buffer full"] += 1
        except OSError as e:  # e.g. ECONNREFUSED from an earlier ICMP error: nobody listens upstream
            self.drops[f"upstream: send failed ({e.strerror})"] += 1
        self._close_finished_flows()

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

    def _connect(self) -> socket.socket | None:
        """A new non-blocking socket connected to the upstream, in the epoll set; None (counted) on failure."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.connect(self.upstream)  # numeric address: no lookup, returns at once
        except OSError as e:
            sock.close()
            self.drops[f"upstream: cannot open a flow socket ({e.strerror})"] += 1
            return None
        self._epoll.register(sock.fileno(), select.EPOLLIN)
        return sock

    def _open(self, flow: Flow) -> socket.socket | None:
        if self._epoll is None:
            raise RuntimeError("UpstreamDriver.submit() called before run() started")
        sock, self._spare = self._spare, None
        if sock is None:
            sock = self._connect()
            if sock is None:
                return None
        fd = sock.fileno()
        self._by_fd[fd] = (flow.id, sock)
        self._sockets[flow.id] = sock
        if len(self._sockets) == 1:
            self._flows_changed.set()  # wake the expiry timer, which sleeps while there are no flows
        return sock

    async def _receive_replies(self) -> None:
        """Wait for any flow socket to be readable (the epoll set is itself pollable), drain them all."""
        epoll = self._epoll
        while True:
            await trio.lowlevel.wait_readable(epoll.fileno())
            self._drain_ready()

    def _drain_ready(self) -> None:
        """Pass on every reply queued on any flow socket now; never blocks."""
        by_fd = self._by_fd
        handle_upstream = self.service.handle_upstream
        while True:
            events = self._epoll.poll(0, _EVENTS_PER_POLL)
            for fd, _ in events:
                entry = by_fd.get(fd)
                if entry is not None:
                    self._drain_socket(entry[0], entry[1], handle_upstream)
                else:
                    self._discard_unsolicited(fd)
            if len(events) < _EVENTS_PER_POLL:
                break
        if self._spare is None:
            # the next new flow's socket, made once this exchange's reply is with the guest:
            # on the request's path it would hold the GIL while the responder thread waits for it
            self._spare = self._connect()

    def _drain_socket(self, flow_id: int, sock: socket.socket, handle_upstream) -> None:
        now = None
        while True:
            try:
                payload = sock.recv(_MAX_DATAGRAM)
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                self.drops["upstream: port unreachable (no server listening)"] += 1
                continue
            except OSError:
                return  # closed under us
            if now is None:
                now = trio.current_time()
            reply = handle_upstream(flow_id, payload, now)
            if reply is not None:
                flow = self.service.flows.get(flow_id)
                assert flow is not None  # handle_upstream returns None for unknown flows
                self.sink.send_to_guest(flow.guest, flow.local_ip, self.service.port, reply)

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
            sock = self._sockets.pop(flow.id, None)
            if sock is not None:
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
        return len(self._sockets)
