"""The trio runtime: wires a transport, the sans-IO stack, the plugins' services and their upstreams.

    transport --frame, link--> Stack.receive_frame(frame, now) --frames--> back on that link
                                     |
                                     +--Forward--> UpstreamDriver.submit(forward, link) --UDP--> host server
                                                        <--reply on the flow's socket-- (loopback)
                 link <--frame-- Stack.receive_upstream(port, flow, reply, now) <-- Gateway.upstream_reply

Each forwarding service's upstream is what its plugin names
(`gateway.core.plugin.Upstream`): an address on the host, or a host server the
plugin provides (the ntp plugin's embedded SNTP responder), started here before
the gateway serves. docs/architecture.md follows one guest NTP request through.

An upstream reply goes back on the link the flow's latest request came in on
(the driver keeps it with the flow's socket), built by the same sans-IO
`Stack.receive_upstream` a replay uses. Nothing is routed by MAC address.

All clocks and sockets live here and in the transports; `now` is trio's
monotonic clock. Shutdown is structured: cancelling `run` closes the transport
(removing a TAP device or socket file), the flows' sockets and the responder.

No one frame ends the gateway: what a frame or an upstream reply makes go
wrong inside hostclock (a bug) is logged once with its traceback, then
counted as "gateway: internal error", and that frame is dropped. A `--pcap`
recording that cannot be written (a full disk) stops with one log line;
serving goes on.

Watching guest clocks (`[guest_clock] interval`, `--watch-guest-clock`): the
stack's `GuestClockWatcher` learns guests from their frames, each frame handed
to it with its link and the host's Unix time of arrival; a task of its own
sleeps until the watcher's `next_timer()` (with nothing to probe, until a
guest is seen: no wake-ups), sends what `on_timer` returns on each guest's own
link, and hands each reading to the log (a line when a guest's offset crosses
the threshold or comes back) and to `--guest-clock-log` (one CSV row each,
flushed; a log that cannot be written stops with one line, serving goes on).
"""

from __future__ import annotations

import logging
import math
import resource
import time
from time import monotonic_ns
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import trio

from gateway.app.access import drop_privileges, grant_socket_access
from gateway.app.assembly import assemble
from gateway.app.config import Config
from gateway.core.config import ConfigError
from gateway.core.ethernet import HEADER_LEN as ETHERNET_HEADER_LEN
from gateway.core.guest_clock import GuestClockOffset
from gateway.core.kernel_filter import frame_filter
from gateway.core.plugin import HostServer
from gateway.core.service import GuestLifecycle, UdpService
from gateway.core.udp import with_payload
from gateway.edges.guest_clock_log import GuestClockLog
from gateway.edges.pcap_writer import PcapWriter
from gateway.edges.transports.base import FiltersInKernel, GuestLink, IdentifiesGuests, Transport
from gateway.edges.upstream import UpstreamDriver

__all__ = ["Gateway", "serve", "make_room_for_flows"]

log = logging.getLogger("hostclock")

_DROP_REPORT_INTERVAL = 60.0
#: descriptors needed besides the flows' sockets: the transport and its guests' connections,
#: the responder, epoll sets, the spare flow socket, a pcap file, trio's own, the standard streams
FD_RESERVE = 256
INTERNAL_ERROR = "gateway: internal error"


def make_room_for_flows(max_flows: int) -> bool:
    """Raise the soft open-file limit (RLIMIT_NOFILE) toward the hard one, so that `max_flows`
    flow sockets and `FD_RESERVE` others fit; if they cannot, log one warning line.

    True if they fit. Without this, Debian's default soft limit (1024) equals the default
    max_flows: the flows would run out of descriptors (they are then dropped and counted).
    """
    needed = max_flows + FD_RESERVE
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return True  # no limit to read: nothing to do
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return True
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):
            pass
    if soft >= needed:
        return True
    log.warning("open-file limit %d (hard limit %d) is below the %d that %d NTP flows need: past about %d "
                "flows, requests are dropped and counted; raise the limit (ulimit -n) or lower time.max_flows",
                soft, hard, needed, max_flows, max(0, soft - FD_RESERVE))
    return False


def _socket_path(transport: Transport) -> str | None:
    """The socket file a transport listens on (`--qemu-stream PATH`, ...), or None (a TAP, stdio)."""
    path = getattr(transport, "path", None)
    return path if isinstance(path, str) else None


class Gateway:
    """A running hostclock gateway: one transport, one stack, the time service and any others."""

    def __init__(self, config: Config, transport: Transport, *, plugins: Iterable[str] = (),
                 services: Iterable[UdpService] = (), pcap: str | None = None,
                 guest_clock_log: str | None = None, wall_clock: Callable[[], int] = time.time_ns) -> None:
        self.config = config
        self.transport = transport
        assembly = assemble(config, plugins=plugins, services=services)
        self.stack = assembly.stack
        self._upstreams = assembly.upstreams
        if isinstance(transport, IdentifiesGuests):
            # a transport that knows its guests (vmnet) tells the services that care (DHCP holds a
            # guest's preferred address for its MAC while it is attached)
            for service in self.stack.services.values():
                if isinstance(service, GuestLifecycle):
                    transport.add_guest_hooks(
                        lambda mac, ip, service=service: service.guest_attached(mac, ip, trio.current_time()),
                        service.guest_detached)
        #: forwarding port -> where its requests go, once started (a host server's address, or the configured one)
        self.upstream_addresses: dict[int, tuple[str, int]] = {}
        #: forwarding port -> the host server its plugin provides, once started
        self.host_servers: dict[int, HostServer] = {}
        self._drivers: dict[int, UpstreamDriver] = {}
        #: forwarding port -> its plugin's `Upstream.correct_reply` (the residence-time correction)
        self._correctors: dict[int, Any] = {}
        #: replies the correctors rewrote, and those they passed as the server sent them
        self.residence_corrected = 0
        self.residence_passed = 0
        #: what the runtime itself dropped, by reason
        self._drops: Counter[str] = Counter()
        self._internal_error_logged = False
        self._activity = trio.Event()
        #: where `run` records the guest's link, both directions (`hostclock run --pcap`), or None
        self.pcap_path = pcap
        self._recorder: PcapWriter | None = None
        #: the guest clock watcher (`gateway.core.guest_clock.GuestClockWatcher`), or None when not watching
        self.guest_clock = self.stack.guest_clock
        if guest_clock_log is not None and self.guest_clock is None:
            raise ConfigError("a guest clock log needs guest clocks watched: set [guest_clock] interval "
                              "(or pass --watch-guest-clock)")
        #: where `run` writes one CSV row per guest clock reading (`--guest-clock-log`), or None
        self.guest_clock_log_path = guest_clock_log
        self._clock_log: GuestClockLog | None = None
        self._watch_wakeup = trio.Event()
        self._guests_read: set[tuple[str, str]] = set()
        #: the host's Unix time in ns, for the watcher's probes and readings (a test may inject one)
        self._wall_ns = wall_clock

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled. `task_status.started(line)` gives the one-line ready message.

        The transport starts first, so that the commonest start-up error (a TAP that
        cannot be created, a socket path in use) is reported before anything else runs.
        Frames arriving in the moment before the upstreams are ready are dropped and counted.
        Before anything, the process's soft open-file limit is raised if the flows need it
        (`make_room_for_flows`).
        """
        started = False
        if hasattr(self.transport, "max_guests"):  # a listening transport: how many guests it serves at once
            self.transport.max_guests = self.config.access.max_guests
        make_room_for_flows(sum(service.flows.max_flows for service in self.stack.forwarders.values()))
        if self.pcap_path is not None:
            # buffered writes of wall-clock-stamped records (no scapy here); flushed and closed on exit
            self._recorder = PcapWriter(self.pcap_path)
        if self.guest_clock_log_path is not None:
            try:
                self._clock_log = GuestClockLog(self.guest_clock_log_path)
            except BaseException:
                self._close_recorder()
                raise
        try:
            async with trio.open_nursery() as nursery:
                if self.config.gateway.kernel_filter and isinstance(self.transport, FiltersInKernel):
                    self.transport.filter_in_kernel(frame_filter(self.stack))
                await nursery.start(self.transport.run, self._on_frame)
                grant_socket_access(_socket_path(self.transport), self.config.access)
                answered_by = []
                for port, service in self.stack.forwarders.items():
                    upstream = self._upstreams.get(port)
                    if upstream is None:
                        continue  # an embedder's forwarding service with no upstream: its requests are counted
                    if upstream.address is not None:
                        address = upstream.address
                    else:
                        server = upstream.host_server(user=self.config.access.user)
                        address = await nursery.start(server.run)
                        self.host_servers[port] = server
                    self.upstream_addresses[port] = address
                    timing_keys = None
                    if upstream.correct_reply is not None:
                        self._correctors[port] = upstream.correct_reply
                        timing_keys = (upstream.request_key, upstream.reply_key)
                    driver = UpstreamDriver(service, address, self, timing_keys=timing_keys)
                    await nursery.start(driver.run)
                    self._drivers[port] = driver
                    answered_by.append(f"UDP {port} on the {upstream.description} {address[0]}:{address[1]}")
                nursery.start_soon(self._report_drops)
                if self.guest_clock is not None:
                    nursery.start_soon(self._watch_guest_clocks)
                    answered_by.append(f"watching guest clocks every {self.guest_clock.interval:g} s")
                # everything privileged is open (the TAP, the socket file, the host servers' ports)
                drop_privileges(self.config.access.user)
                started = True
                gw = self.config.gateway
                task_status.started(
                    f"hostclock: gateway {gw.gateway_ip} ({gw.gateway_mac}) on {self.transport.description}; "
                    + ("; ".join(answered_by) if answered_by else "no forwarding services"))
        except BaseExceptionGroup as group:
            # A start-up failure (a TAP that cannot be made, a socket path or port in use) reaches
            # the caller as itself, not wrapped in the nursery's exception group.
            if not started and len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
                raise group.exceptions[0] from None
            raise
        finally:
            self._close_recorder()
            if self._clock_log is not None:
                clock_log, self._clock_log = self._clock_log, None
                try:
                    clock_log.close()
                except OSError as e:
                    log.warning("--guest-clock-log %s: the end of the log could not be written (%s)",
                                self.guest_clock_log_path, e.strerror or e)
            if started:
                summary = self.drop_summary()
                residence = (f"; replies residence-corrected: {self.residence_corrected} "
                             f"(passed as sent: {self.residence_passed})" if self._correctors else "")
                log.info("stopped: %d frames received, %d sent%s%s", self.stack.frames_received,
                         self.stack.frames_sent, residence, f"; dropped: {summary}" if summary else "")

    def _close_recorder(self) -> None:
        if self._recorder is not None:
            recorder, self._recorder = self._recorder, None
            try:
                recorder.close()
            except OSError as e:
                log.warning("--pcap %s: the end of the recording could not be written (%s)",
                            self.pcap_path, e.strerror or e)

    # -- the hot path ----------------------------------------------------------------

    def _on_frame(self, frame: bytes, link: GuestLink, read_ns: int | None = None) -> None:
        """A frame from the guest on `link`, read from the transport at `read_ns` (monotonic ns;
        now, if the transport does not say)."""
        if read_ns is None:
            read_ns = monotonic_ns()
        try:
            if self._recorder is not None:
                # stamped when it was read (the residence-corrected replies' T2 is moved there too)
                self._record(frame, time.time_ns() - (monotonic_ns() - read_ns))
            watcher = self.guest_clock
            if watcher is None:
                outputs = self.stack.receive_frame(frame, trio.current_time())
            else:
                # the watcher learns guests by link, and stamps readings with the host's time of arrival
                outputs = self.stack.receive_frame(frame, trio.current_time(), link, self._wall_ns())
                if watcher.timer_moved:
                    self._watch_wakeup.set()
                if watcher.has_offsets:
                    self._report_guest_clocks()
            if not self._activity.is_set():
                self._activity.set()
            for output in outputs:  # frames for the guest, or Forwards (`gateway.core.service.Output`)
                if type(output) is bytes:
                    self._send_frame(link, output)
                else:
                    driver = self._drivers.get(output.port)
                    if driver is not None:
                        sent = driver.submit(output, link, read_ns)  # its replies come back on this link
                    else:
                        self._drops[self._unforwarded(output.port)] += 1
                        sent = False
                    if not sent:  # what the service counted for it (a place under max_in_flight) goes
                        not_forwarded = getattr(self.stack.forwarders.get(output.port), "not_forwarded", None)
                        if not_forwarded is not None:
                            not_forwarded(output)
        except Exception:
            self._internal_error(f"a frame from {link.description}")

    def upstream_reply(self, port: int, flow_id: int, payload: bytes, link: GuestLink, now: float,
                       arrival_ns: int | None = None, request_residence_ns: int | None = None) -> None:
        """`UpstreamSink`: an upstream's reply on a flow, for the guest on `link`, the link the flow's
        latest request came in on. Screened and framed by `Stack.receive_upstream`, as in a replay;
        then, when its plugin corrects residence (NTP), rewritten with Tw read here, just before the
        frame is written: ``correct_reply(reply, Ts - Tr, Tw - Tu)``."""
        try:
            if not link.is_open:
                self._drops["gateway: the guest's link closed before its upstream reply"] += 1
                return
            frame = self.stack.receive_upstream(port, flow_id, payload, now)
            if frame is None:
                return
            if arrival_ns is not None:
                correct = self._correctors.get(port)
                if correct is not None:
                    corrected = correct(payload, request_residence_ns, monotonic_ns() - arrival_ns)
                    if corrected is not payload:
                        frame = with_payload(frame, ETHERNET_HEADER_LEN, corrected)
                        self.residence_corrected += 1
                    else:
                        self.residence_passed += 1
            self._send_frame(link, frame)
        except Exception:
            self._internal_error("an upstream reply")

    def _send_frame(self, link: GuestLink, frame: bytes) -> None:
        link.send_frame(frame)
        if self._recorder is not None:
            self._record(frame)

    def _unforwarded(self, port: int) -> str:
        if port in self._upstreams:
            return "gateway: starting, upstream not ready yet"
        return f"gateway: UDP port {port}'s service forwards, but no plugin named an upstream for it"

    def _internal_error(self, what: str) -> None:
        """A bug met while handling `what` (the exception being handled): drop it, log the first."""
        self._drops[INTERNAL_ERROR] += 1
        if not self._internal_error_logged:
            self._internal_error_logged = True
            log.exception("internal error while handling %s; dropped (logged once: later ones are "
                          "counted as %r)", what, INTERNAL_ERROR)

    def _record(self, frame: bytes, wall_ns: int | None = None) -> None:
        """Record `frame` at `wall_ns` (Unix ns; now if None)."""
        try:
            self._recorder.write(time.time_ns() if wall_ns is None else wall_ns, frame)
        except OSError as e:  # a full disk (ENOSPC), say: recording stops, serving goes on
            recorder, self._recorder = self._recorder, None
            log.warning("--pcap %s: cannot write (%s); recording stopped after %d frames, serving goes on",
                        self.pcap_path, e.strerror or e, recorder.frames)
            try:
                recorder.close()
            except OSError:
                pass

    # -- watching guest clocks -------------------------------------------------------------

    async def _watch_guest_clocks(self) -> None:
        """Send the watcher's probes when due; sleep until then, or until a guest is seen if none is due."""
        watcher = self.guest_clock
        while True:
            watcher.timer_moved = False
            deadline = watcher.next_timer()
            if deadline is None or deadline > trio.current_time():
                self._watch_wakeup = trio.Event()
                with trio.move_on_at(math.inf if deadline is None else deadline):
                    await self._watch_wakeup.wait()
                continue  # woken early (a guest seen) or due: read the timer again
            try:
                for link, frame in watcher.on_timer(trio.current_time(), self._wall_ns()):
                    if link.is_open:
                        self._send_frame(link, frame)
                    else:
                        self._drops["gateway: a guest clock probe's link has closed"] += 1
                        watcher.forget_link(link)
                self._report_guest_clocks()
            except Exception:
                self._internal_error("the guest clock watcher's timer")
                await trio.sleep(1.0)  # a bug must not make this loop spin

    def _report_guest_clocks(self) -> None:
        """Each new reading: a CSV row, and a log line when it crosses the threshold or comes back."""
        for offset in self.guest_clock.take_offsets():
            if self._clock_log is not None:
                self._write_clock_row(offset)
            guest = f"guest {offset.guest_ip} ({offset.guest_mac})"
            how = f"{offset.source} reading, error {offset.error_s:.3f} s"
            if offset.crossing == "out":
                log.warning("%s clock %s (%s)", guest, _offset_phrase(offset.offset_s), how)
            elif offset.crossing == "back":
                log.info("%s clock back within %g s of the host: %s (%s)", guest, self.guest_clock.threshold / 2,
                         _offset_phrase(offset.offset_s), how)
            elif (offset.guest_ip, offset.guest_mac) not in self._guests_read:
                log.info("%s clock %s (%s; logged again if it goes beyond %g s)", guest,
                         _offset_phrase(offset.offset_s), how, self.guest_clock.threshold)
            self._guests_read.add((offset.guest_ip, offset.guest_mac))

    def _write_clock_row(self, offset: GuestClockOffset) -> None:
        try:
            self._clock_log.write(offset)
        except OSError as e:  # a full disk (ENOSPC), say: the log stops, serving goes on
            clock_log, self._clock_log = self._clock_log, None
            log.warning("--guest-clock-log %s: cannot write (%s); the log stopped after %d rows, serving goes on",
                        self.guest_clock_log_path, e.strerror or e, clock_log.rows)
            try:
                clock_log.close()
            except OSError:
                pass

    # -- reporting ---------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        """Everything counted so far, for logs, tests and `--json` output."""
        others: list[Any] = [driver.drops for driver in self._drivers.values()]
        transport_drops = getattr(self.transport, "drops", None)  # an embedder's transport may not count
        if transport_drops:
            others.append(transport_drops)
        # a host server may count in its own thread: copy first (one C-level call, atomic under the GIL)
        others.extend(dict(server.drops) for server in self.host_servers.values())
        others.append(self._drops)
        figures: dict[str, Any] = {"frames_received": self.stack.frames_received,
                                   "frames_sent": self.stack.frames_sent}
        for service in self.stack.services.values():
            service_counters = getattr(service, "counters", None)
            if service_counters is not None:
                figures.update(service_counters())
        figures["drops"] = dict(self.stack.drop_counts(*others))
        if self.guest_clock is not None:
            figures["guest_clock"] = self.guest_clock.counters()
        return figures

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


def _offset_phrase(offset_s: float) -> str:
    """-1.482 -> "1.482 s behind the host"; the sign is the guest's clock minus the host's."""
    return f"{abs(offset_s):.3f} s {'behind' if offset_s < 0 else 'ahead of'} the host"


async def serve(transport: Transport, config: Config | None = None, *, plugins: tuple[str, ...] = (),
                services: tuple[UdpService, ...] = (), guest_clock_log: str | None = None,
                task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Run a gateway on `transport` until cancelled; `task_status.started()` gives the ready line.

    With `config.guest_clock.interval` set, it watches each guest's clock (`Gateway.guest_clock`),
    writing one CSV row per reading to `guest_clock_log` if given."""
    gateway = Gateway(config or Config(), transport, plugins=plugins, services=services,
                      guest_clock_log=guest_clock_log)
    await gateway.run(task_status=task_status)
