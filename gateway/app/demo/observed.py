"""The in-process gateway of the demo: the product's `Gateway`, plus the few figures the view
shows that the runtime does not count itself.

- guests attached: links that have sent a frame and are still open (a wrapper around the
  transport, which sees every frame's link);
- the last NTP reply's delay at the gateway: from the guest's request reaching the gateway to
  the responder's reply coming back (the flow's `last_active` is the request's `now`, on
  trio's clock, the one `upstream_reply` gets);
- the DHCP lease of a guest whose MAC the demo knows (the client key busybox's udhcpc uses:
  option 61 is 0x01 + MAC, which is also the key of a client without one).
"""

from __future__ import annotations

from typing import Any

import trio

from gateway.app.config import Config
from gateway.app.runtime import Gateway
from gateway.core.addresses import format_ipv4
from gateway.edges.transports.base import FrameHandler, GuestLink, Transport

__all__ = ["ObservedGateway", "LinkWatchingTransport"]


class LinkWatchingTransport:
    """A transport that remembers the links its frames came on (to count the guests attached)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.description = inner.description
        self.drops = inner.drops
        self._links: dict[int, GuestLink] = {}

    @property
    def finished(self) -> trio.Event | None:
        return getattr(self.inner, "finished", None)

    async def run(self, on_frame: FrameHandler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        links = self._links

        def watched(frame: bytes, link: GuestLink) -> None:
            if id(link) not in links:
                links[id(link)] = link
            on_frame(frame, link)

        await self.inner.run(watched, task_status=task_status)

    def attached(self) -> int:
        for key in [key for key, link in self._links.items() if not link.is_open]:
            del self._links[key]
        return len(self._links)


class ObservedGateway(Gateway):
    def __init__(self, config: Config, transport: Transport) -> None:
        self.watched_transport = LinkWatchingTransport(transport)
        super().__init__(config, self.watched_transport)
        #: seconds from the latest answered request to its reply, at the gateway
        self.last_reply_delay_s: float | None = None

    def upstream_reply(self, port: int, flow_id: int, payload: bytes, link: GuestLink, now: float) -> None:
        flow = self.time_service.flows.get(flow_id)
        requested_at = flow.last_active if flow is not None else None  # the reply refreshes it
        answered = self.time_service.answered
        super().upstream_reply(port, flow_id, payload, link, now)
        if requested_at is not None and self.time_service.answered > answered:
            self.last_reply_delay_s = now - requested_at

    def lease_of(self, mac: bytes) -> str | None:
        """'192.168.65.3 for 3600 s' while the guest with `mac` holds a bound lease, else None."""
        if self.dhcp_service is None:
            return None
        lease = self.dhcp_service.leases.lease_of(b"\x01" + mac)
        now = trio.current_time()
        if lease is None or not lease.bound or not lease.is_active(now):
            return None
        return f"{format_ipv4(lease.ip)}, {lease.expires - now:.0f} s left"

    def figures(self, guest_mac: bytes | None = None) -> dict[str, Any]:
        figures = self.counters()
        figures["guests_attached"] = self.watched_transport.attached()
        figures["last_reply_delay_s"] = self.last_reply_delay_s
        figures["dhcp_lease"] = self.lease_of(guest_mac) if guest_mac is not None else None
        return figures
