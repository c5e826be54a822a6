"""A UDP flow table with vpnkit's NAT semantics, sans-IO.

A flow is one guest conversation, keyed on the guest's (source MAC, source IP,
source port). vpnkit keys its UDP NAT on (source IP, port) alone; it serves one
VM per NAT, while one hostclock gateway may serve several guests at once (one
per connection of a stream, seqpacket, datagram or vmnet transport), and a
guest's source IP is only what it claims. With the MAC in the key, a frame from
another MAC that claims an existing flow's IP and port opens a flow of its own
instead of taking over that flow and its replies. (A VM that comes back with
another MAC opens a new flow too; the old one idles out.)

Each flow gets its own upstream socket (owned by a service's I/O driver), so
upstream replies are matched to the flow by the socket they arrive on. A flow idle for `idle_timeout` seconds of `now` (a monotonic
clock: a host suspend must not expire everything at once) is closed; at
`max_flows` the oldest quarter is closed to make room, so one new flow costs
O(1) amortised however many flows exist.

Closed flows are queued for the driver (`take_closed`) so it can close their sockets.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import count

from gateway.core.service import GuestAddress

__all__ = ["Flow", "FlowTable"]


@dataclass(slots=True, eq=False)
class Flow:
    id: int
    guest: GuestAddress
    #: the gateway address the guest wrote to; replies come from it
    local_ip: bytes
    last_active: float
    #: length of the guest's latest payload (replies must not be longer: anti-amplification)
    last_request_len: int = 0
    closed: bool = field(default=False)


class FlowTable:
    def __init__(self, *, idle_timeout: float = 60.0, max_flows: int = 1024) -> None:
        if idle_timeout <= 0 or max_flows < 4:
            raise ValueError("idle_timeout must be > 0 and max_flows >= 4")
        self.idle_timeout = idle_timeout
        self.max_flows = max_flows
        # least recently active first
        self._by_key: OrderedDict[tuple[bytes, bytes, int], Flow] = OrderedDict()
        self._by_id: dict[int, Flow] = {}
        self._closed: list[Flow] = []
        self._ids = count(1)
        self.opened = 0
        self.evicted = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._by_key)

    def touch(self, guest: GuestAddress, local_ip: bytes, now: float) -> Flow:
        """The flow for this guest endpoint, made most recent; opened if new."""
        key = (guest.mac, guest.ip, guest.port)
        flow = self._by_key.get(key)
        if flow is not None:
            flow.last_active = now
            flow.local_ip = local_ip
            self._by_key.move_to_end(key)
            return flow
        self.expire(now)
        if len(self._by_key) >= self.max_flows:
            self._evict_oldest(max(1, self.max_flows // 4))
        flow = Flow(next(self._ids), guest, local_ip, now)
        self._by_key[key] = flow
        self._by_id[flow.id] = flow
        self.opened += 1
        return flow

    def get(self, flow_id: int) -> Flow | None:
        return self._by_id.get(flow_id)

    def refresh(self, flow: Flow, now: float) -> None:
        """Mark activity on an open flow (an upstream reply)."""
        flow.last_active = now
        guest = flow.guest
        self._by_key.move_to_end((guest.mac, guest.ip, guest.port))

    def expire(self, now: float) -> int:
        """Close flows idle for the timeout; returns how many."""
        expired = 0
        deadline = now - self.idle_timeout
        while self._by_key:
            oldest = next(iter(self._by_key.values()))
            if oldest.last_active > deadline:
                break
            self._close_oldest()
            expired += 1
        self.expired += expired
        return expired

    def next_expiry(self) -> float | None:
        """When the oldest flow will expire, or None with no flows (then no timer is needed)."""
        if not self._by_key:
            return None
        return next(iter(self._by_key.values())).last_active + self.idle_timeout

    def take_closed(self) -> list[Flow]:
        """Flows closed since the last call (their sockets should be closed)."""
        closed, self._closed = self._closed, []
        return closed

    def close_all(self) -> None:
        while self._by_key:
            self._close_oldest()

    def _evict_oldest(self, n: int) -> None:
        for _ in range(min(n, len(self._by_key))):
            self._close_oldest()
            self.evicted += 1

    def _close_oldest(self) -> None:
        _, flow = self._by_key.popitem(last=False)
        del self._by_id[flow.id]
        flow.closed = True
        self._closed.append(flow)
