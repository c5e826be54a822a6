"""The trio runtime: wires a transport, the sans-IO stack, the services and their upstreams.

    transport --frame--> Stack.receive_frame(frame, now) --frames--> back on the guest's link
                                     |
                                     +--Forward--> UpstreamDriver --UDP--> SNTP responder (loopback)
                                                        <--reply-- ... --> send_to_guest()

All clocks and sockets live here and in the transports; `now` is trio's
monotonic clock. Shutdown is structured: cancelling `run` closes the transport
(removing a TAP device or socket file), the flows' sockets and the responder.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import trio

from .addresses import format_ipv4, format_mac
from .config import Config, parse_host_port
from .assembly import build_stack
from .pcap_writer import PcapWriter
from .service import GuestAddress, UdpService
from .transports.base import GuestLink, Transport
from .upstream import Forward, UpstreamDriver

__all__ = ["Gateway"]

DHCP_SERVER_PORT = 67

log = logging.getLogger("hostclock")

_MAX_LEARNED_MACS = 4096
_DROP_REPORT_INTERVAL = 60.0


class Gateway:
    """A running hostclock gateway: one transport, one stack, the time service and any others."""

    def __init__(self, config: Config, transport: Transport, *, plugins: Iterable[str] = (),
                 services: Iterable[UdpService] = (), pcap: str | None = None) -> None:
        from plugins.time_service import NTP_PORT

        self.config = config
        self.transport = transport
        self.stack = build_stack(config, plugins=plugins, services=services)
        self.time_service = self.stack.services[NTP_PORT]
        #: the DHCP server (RFC 2131) handing the guest an address, router and NTP server; None if disabled
        self.dhcp_service = self.stack.services.get(DHCP_SERVER_PORT)
        if self.dhcp_service is not None and getattr(transport, "on_guest_attached", False) is None:
            # vmnet clients may ask for an address: hold it for their MAC in the DHCP pool
            transport.on_guest_attached = self._reserve_preferred_address  # type: ignore[attr-defined]
        #: where guest NTP requests go: the embedded responder's address once started, or the configured one
        self.upstream: tuple[str, int] | None = None
        self._drivers: dict[int, UpstreamDriver] = {}
        self._links_by_mac: dict[bytes, GuestLink] = {}
        self._unroutable: Counter[str] = Counter()
        self._activity = trio.Event()
        #: where `run` records the guest's link, both directions (`hostclock run --pcap`), or None
        self.pcap_path = pcap
        self._recorder: PcapWriter | None = None

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled. `task_status.started(line)` gives the one-line ready message.

        The transport starts first, so that the commonest start-up error (a TAP that
        cannot be created, a socket path in use) is reported before anything else runs.
        Frames arriving in the moment before the upstream is ready are dropped and counted.
        """
        started = False
        if self.pcap_path is not None:
            # buffered writes of wall-clock-stamped records (no scapy here); flushed and closed on exit
            self._recorder = PcapWriter(self.pcap_path)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.transport.run, self._on_frame)
                if self.config.time.upstream is None:
                    from plugins.sntp.server import SntpServer

                    self.upstream = await nursery.start(SntpServer(self.config.responder).run)
                    source = f"embedded SNTP responder on {self.upstream[0]}:{self.upstream[1]}"
                else:
                    self.upstream = parse_host_port(self.config.time.upstream, what="upstream")
                    source = f"SNTP server {self.upstream[0]}:{self.upstream[1]}"
                driver = UpstreamDriver(self.time_service, self.upstream, self)
                await nursery.start(driver.run)
                self._drivers[self.time_service.port] = driver
                nursery.start_soon(self._report_drops)
                started = True
                gw = self.config.gateway
                task_status.started(
                    f"hostclock: gateway {gw.gateway_ip} ({gw.gateway_mac}) on {self.transport.description}; "
                    f"NTP on {gw.gateway_ip}:123 answered by the {source}")
        except BaseExceptionGroup as group:
            # A start-up failure (a TAP that cannot be made, a socket path or port in use) reaches
            # the caller as itself, not wrapped in the nursery's exception group.
            if not started and len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
                raise group.exceptions[0] from None
            raise
        finally:
            if self._recorder is not None:
                self._recorder.close()
            if started:
                summary = self.drop_summary()
                log.info("stopped: %d frames received, %d sent%s", self.stack.frames_received,
                         self.stack.frames_sent, f"; dropped: {summary}" if summary else "")

    def _reserve_preferred_address(self, mac: bytes, preferred_ip: bytes | None) -> str | None:
        """A vmnet guest attached; returns a reason to refuse it, or None."""
        if preferred_ip is None:
            return None
        if not self.dhcp_service.reserve(mac, preferred_ip, trio.current_time()):
            return f"preferred address {format_ipv4(preferred_ip)} is not available on {self.config.gateway.network}"
        return None

    # -- the hot path ----------------------------------------------------------------

    def _on_frame(self, frame: bytes, link: GuestLink) -> None:
        if self._recorder is not None:
            self._recorder.write(time.time_ns(), frame)
        outputs = self.stack.receive_frame(frame, trio.current_time())
        if not self._activity.is_set():
            self._activity.set()
        if not outputs:
            return
        # A frame the stack answered came from a guest on this link: replies that come
        # later (an upstream NTP answer) find the guest by its MAC.
        self._learn(frame[6:12], link)
        for output in outputs:
            if type(output) is bytes:
                self._send_frame(link, output)
            elif isinstance(output, Forward):
                driver = self._drivers.get(output.port)
                if driver is None:
                    self._unroutable["gateway: starting, upstream not ready yet"] += 1
                else:
                    driver.submit(output)
            else:
                raise TypeError(f"a service returned {output!r}; services return bytes or Forward")

    def send_to_guest(self, guest: GuestAddress, local_ip: bytes, port: int, payload: bytes) -> None:
        """`GuestSink`: deliver a service's payload to `guest` from `local_ip`:`port`."""
        link = self._links_by_mac.get(guest.mac)
        if link is None or not link.is_open:
            self._unroutable[f"guest {format_mac(guest.mac)} has detached"] += 1
            return
        frame = self.stack.udp_frame_to_guest(guest, local_ip, port, payload)
        if frame is not None:
            self._send_frame(link, frame)

    def _send_frame(self, link: GuestLink, frame: bytes) -> None:
        link.send_frame(frame)
        if self._recorder is not None:
            self._recorder.write(time.time_ns(), frame)

    def _learn(self, mac: bytes, link: GuestLink) -> None:
        known = self._links_by_mac.get(mac)
        if known is link:
            return
        if known is None and len(self._links_by_mac) >= _MAX_LEARNED_MACS:
            # forget detached guests first, then the oldest learned
            for stale in [m for m, l in self._links_by_mac.items() if not l.is_open] or [next(iter(self._links_by_mac))]:
                del self._links_by_mac[stale]
        self._links_by_mac[mac] = link

    # -- reporting ---------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        """Everything counted so far, for logs, tests and `--json` output."""
        drops: Counter[str] = Counter({str(reason): n for reason, n in self.stack.drops.items()})
        for service in self.stack.services.values():
            drops.update(service.drops)
        for driver in self._drivers.values():
            drops.update(driver.drops)
        drops.update(self._unroutable)
        return {
            "frames_received": self.stack.frames_received,
            "frames_sent": self.stack.frames_sent,
            "ntp_forwarded": self.time_service.forwarded,
            "ntp_answered": self.time_service.answered,
            "flows_open": len(self.time_service.flows),
            "drops": dict(drops),
        }

    def drop_summary(self) -> str:
        drops = self.counters()["drops"]
        return "; ".join(f"{n} x {reason}" for reason, n in sorted(drops.items(), key=lambda kv: -kv[1]))

    async def _report_drops(self) -> None:
        """Summarise drops once a minute while there is traffic; sleep without wake-ups while idle."""
        reported: dict[str, int] = {}
        while True:
            await self._activity.wait()
            await trio.sleep(_DROP_REPORT_INTERVAL)
            self._activity = trio.Event()
            drops = self.counters()["drops"]
            new = {reason: n - reported.get(reason, 0) for reason, n in drops.items() if n != reported.get(reason, 0)}
            if new:
                log.info("dropped in the last minute: %s",
                         "; ".join(f"{n} x {reason}" for reason, n in sorted(new.items(), key=lambda kv: -kv[1])))
            reported = drops
