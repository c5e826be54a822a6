"""The in-process gateway of the demo: the product's `Gateway`, plus the few figures the view
shows that the runtime does not count itself.

- guests attached: links that have sent a frame and are still open (a wrapper around the
  transport, which sees every frame's link);
- the guest's DHCP lease: read from the DHCPACKs the gateway sends (`lease_watch`), since
  the gateway never reaches into a plugin;
- the guest-clock watcher's readings, handed to the demo as the runtime takes them (the
  runtime drains `GuestClockWatcher.take_offsets()` for its log; the demo wraps that one
  call rather than reaching into the runtime);
- the last forwarded reply's delay at the gateway: from the guest's request reaching the
  gateway to the host server's reply coming back (the flow's `last_active` is the request's
  `now`, on trio's clock, the one `upstream_reply` gets; the reply then refreshes it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from gateway.app.config import Config
from gateway.app.demo.lease_watch import Lease, lease_in_frame
from gateway.app.runtime import Gateway
from gateway.edges.transports.base import FrameHandler, GuestLink, Transport

__all__ = ["ObservedGateway", "LinkWatchingTransport"]


class _WatchedLink:
    """A guest link whose frames to the guest are read (for DHCPACKs) on their way out."""

    def __init__(self, link: GuestLink, on_sent: Any) -> None:
        self.link = link
        self.description = link.description
        self._on_sent = on_sent

    @property
    def is_open(self) -> bool:
        return self.link.is_open

    def send_frame(self, frame: bytes) -> None:
        self.link.send_frame(frame)
        self._on_sent(frame)


class LinkWatchingTransport:
    """A transport that remembers the links its frames came on, and reads the frames sent on them."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.description = inner.description
        self.drops = inner.drops
        self._links: dict[int, _WatchedLink] = {}
        #: the latest lease granted to each MAC
        self.leases: dict[bytes, tuple[Lease, float]] = {}
        #: every frame on the guests' links, both ways (the watcher's probes included, which the stack
        #: does not count: the runtime sends them)
        self.frames_in = 0
        self.frames_out = 0

    async def run(self, on_frame: FrameHandler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        links = self._links

        def watched(frame: bytes, link: GuestLink) -> None:
            self.frames_in += 1
            proxy = links.get(id(link))
            if proxy is None or proxy.link is not link:
                proxy = links[id(link)] = _WatchedLink(link, self._sent)
            on_frame(frame, proxy)

        await self.inner.run(watched, task_status=task_status)

    def _sent(self, frame: bytes) -> None:
        self.frames_out += 1
        if len(frame) > 300 and frame[23:24] == b"\x11":  # IPv4 protocol UDP: maybe a DHCP reply
            lease = lease_in_frame(frame)
            if lease is not None:
                self.leases[lease.mac] = (lease, trio.current_time())

    def attached(self) -> int:
        for key in [key for key, proxy in self._links.items() if not proxy.is_open]:
            del self._links[key]
        return len(self._links)


#: how often the demo's gateway reads the guest's clock (ICMP timestamps): each refresh of the view
WATCH_INTERVAL_S = 1.0


class ObservedGateway(Gateway):
    """`Gateway` with the guest-clock watcher on (every `WATCH_INTERVAL_S`); each reading goes to
    `on_guest_clock` (a `gateway.core.guest_clock.GuestClockOffset`) as the runtime takes it."""

    def __init__(self, config: Config, transport: Transport, *, on_guest_clock: Callable[[Any], None]) -> None:
        self.watched_transport = LinkWatchingTransport(transport)
        super().__init__(config.replace(guest_clock={"interval": WATCH_INTERVAL_S}), self.watched_transport)
        #: seconds from the latest answered forwarded request to its reply, at the gateway
        self.last_reply_delay_s: float | None = None
        take_offsets = self.guest_clock.take_offsets

        def take_and_tell() -> list[Any]:
            offsets = take_offsets()
            for offset in offsets:
                on_guest_clock(offset)
            return offsets

        self.guest_clock.take_offsets = take_and_tell

    def upstream_reply(self, port: int, flow_id: int, payload: bytes, link: GuestLink, now: float) -> None:
        service = self.stack.forwarders.get(port)
        flow = service.flows.get(flow_id) if service is not None else None
        requested_at = flow.last_active if flow is not None else None  # the reply refreshes it
        sent = self.stack.frames_sent
        super().upstream_reply(port, flow_id, payload, link, now)
        if requested_at is not None and self.stack.frames_sent > sent:
            self.last_reply_delay_s = now - requested_at

    def lease_of(self, mac: bytes) -> str | None:
        """'192.168.65.3, 7190 s left (NTP server 192.168.65.1)' for the guest's latest DHCPACK, else None."""
        found = self.watched_transport.leases.get(mac)
        if found is None:
            return None
        lease, at = found
        ntp = f" (NTP server, option 42: {', '.join(lease.ntp_servers)})" if lease.ntp_servers else ""
        if lease.lease_time_s is None:
            return lease.ip + ntp
        left = lease.lease_time_s - (trio.current_time() - at)
        return f"{lease.ip}, {left:.0f} s left{ntp}" if left > 0 else None

    def figures(self, guest_mac: bytes | None = None) -> dict[str, Any]:
        figures = self.counters()
        figures["guests_attached"] = self.watched_transport.attached()
        figures["frames_on_links"] = (self.watched_transport.frames_in, self.watched_transport.frames_out)
        figures["last_reply_delay_s"] = self.last_reply_delay_s
        figures["dhcp_lease"] = self.lease_of(guest_mac) if guest_mac is not None else None
        return figures
