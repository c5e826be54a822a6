"""Forwarding a service's guest datagrams to an upstream server on the host, one socket per flow.

The sans-IO side is a `ForwardingService`: its `handle_datagram` returns
`Forward` requests, and `handle_upstream` screens what comes back. This module
is the trio edge that carries them: as vpnkit's UDP NAT, each flow gets its own
connected UDP socket, so the kernel matches replies to the flow (a connected
socket only accepts datagrams from the upstream address) and the upstream sees
one client port per guest conversation.

Sends never await: a datagram socket either takes the datagram now or it is
dropped and counted, like a full NIC queue. Replies are drained in a loop per
readiness wake-up. There are no periodic wake-ups: the expiry timer sleeps until
the oldest flow's deadline, or not at all when there are no flows.
"""

from __future__ import annotations

import logging
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
        self._nursery: trio.Nursery | None = None
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
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._expire_idle_flows)
                task_status.started()
        finally:
            self._nursery = None
            self.service.flows.close_all()
            self._close_finished_flows()

    def _open(self, flow: Flow) -> socket.socket | None:
        if self._nursery is None:
            raise RuntimeError("UpstreamDriver.submit() called before run() started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.connect(self.upstream)  # numeric address: no lookup, returns at once
        except OSError as e:
            sock.close()
            self.drops[f"upstream: cannot open a flow socket ({e.strerror})"] += 1
            return None
        self._sockets[flow.id] = sock
        self._nursery.start_soon(self._receive_replies, flow.id, sock)
        if len(self._sockets) == 1:
            self._flows_changed.set()  # wake the expiry timer, which sleeps while there are no flows
        return sock

    async def _receive_replies(self, flow_id: int, sock: socket.socket) -> None:
        try:
            while sock.fileno() != -1:
                await trio.lowlevel.wait_readable(sock)
                while True:
                    try:
                        payload = sock.recv(_MAX_DATAGRAM)
                    except BlockingIOError:
                        break
                    except ConnectionRefusedError:
                        self.drops["upstream: port unreachable (no server listening)"] += 1
                        continue
                    now = trio.current_time()
                    reply = self.service.handle_upstream(flow_id, payload, now)
                    if reply is not None:
                        flow = self.service.flows.get(flow_id)
                        assert flow is not None  # handle_upstream returns None for unknown flows
                        self.sink.send_to_guest(flow.guest, flow.local_ip, self.service.port, reply)
        except trio.ClosedResourceError:
            pass  # the flow was closed under us

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
                trio.lowlevel.notify_closing(sock)
                sock.close()

    @property
    def open_sockets(self) -> int:
        return len(self._sockets)
