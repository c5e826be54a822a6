"""hyperkit/vpnkit "vmnet" clients on a Unix stream socket: a handshake, then frames each
preceded by a u16 little-endian length.

hostclock listens; each connection is one guest with its own link (hyperkit
`-s 2:0,virtio-vpnkit,path=PATH,uuid=UUID`, vpnkit-style clients,
gvisor-tap-vsock's hyperkit mode). The handshake (`vmnet_handshake`) is
vpnkit's: the server assigns the guest's MAC. We derive it from the guest's
UUID (`mac_for_uuid`), so the same UUID gets the same MAC on reconnect, and so
the same DHCP address (vpnkit: "the same UUID gets the same MAC and IP").

The transport knows its guests (`IdentifiesGuests`): hooks added with
`add_guest_hooks` (or given to the constructor) are called with each guest's MAC
and preferred address (the 0x08 command's, 4 bytes, or None) before it is
accepted, so the runtime can reserve that address for that MAC in DHCP; a hook
that returns a string refuses the guest with that reason, as vpnkit refuses a
preferred IP it cannot give. The detach hooks are called once the guest's last
connection has closed, so the runtime releases the reservation.

A guest speaks only as itself: a frame whose source MAC is not the MAC assigned
to its connection is dropped and counted ("vmnet: source MAC is not the
guest's"), so one guest cannot pass itself off as another.

Policies (ours; vpnkit itself reads any u16 length):
* a frame longer than the max packet size we announced (MTU + 50) is a protocol
  error: the connection is logged and closed;
* frames we send shorter than 60 bytes are zero-padded to 60, as hyperkit pads;
* a client that does not finish the handshake within `handshake_timeout`
  seconds is disconnected.
"""

from __future__ import annotations

import logging
import socket
from collections import Counter

import trio

from gateway.core.addresses import format_ipv4, format_mac
from gateway.edges.transports.base import FrameHandler, GuestAttachedHook, GuestDetachedHook, GuestLink
from gateway.edges.transports.framing import VMNET_PREFIX
from gateway.edges.transports.stream_link import StreamLink
from gateway.edges.transports.unix_socket import DEFAULT_MAX_GUESTS, serve_connections
from gateway.edges.transports.vmnet_handshake import GuestRequest, Rejected, SendBytes, VmnetHandshake, mac_for_uuid

__all__ = ["VmnetTransport", "ETHERNET_MIN_FRAME"]

log = logging.getLogger("hostclock.transport.vmnet")

#: the shortest Ethernet frame without its FCS (IEEE 802.3): hyperkit pads to it
ETHERNET_MIN_FRAME = 60
_HANDSHAKE_READ = 4096


class VmnetTransport:
    def __init__(self, path: str, *, mtu: int = 1500, on_guest_attached: GuestAttachedHook | None = None,
                 on_guest_detached: GuestDetachedHook | None = None, handshake_timeout: float = 10.0) -> None:
        self.path = path
        #: connections served at once; more are refused (`[access] max_guests`)
        self.max_guests = DEFAULT_MAX_GUESTS
        self.description = f"vmnet {path}"
        self.mtu = mtu
        self.handshake_timeout = handshake_timeout
        #: MAC (bytes) of every guest currently attached -> its (latest) link
        self.attached: dict[bytes, StreamLink] = {}
        #: frames dropped by the transport and its links, by reason
        self.drops: Counter[str] = Counter()
        self._hooks: list[tuple[GuestAttachedHook | None, GuestDetachedHook | None]] = []
        #: accepted connections per MAC (the same UUID may connect twice): detached at zero
        self._connections: Counter[bytes] = Counter()
        if on_guest_attached is not None or on_guest_detached is not None:
            self.add_guest_hooks(on_guest_attached, on_guest_detached)

    def add_guest_hooks(self, on_attached: GuestAttachedHook | None = None,
                        on_detached: GuestDetachedHook | None = None) -> None:
        """`IdentifiesGuests`: call `on_attached(mac, preferred_ip)` before each guest is accepted
        (a returned reason refuses it) and `on_detached(mac)` once its last connection has closed."""
        self._hooks.append((on_attached, on_detached))

    async def run(self, on_frame: FrameHandler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async def serve_guest(conn: socket.socket, number: int) -> None:
            await self._serve_guest(conn, f"{self.description} #{number}", on_frame)

        await serve_connections(self.path, socket.SOCK_STREAM, serve_guest, self.description,
                                max_guests=self.max_guests, task_status=task_status)

    async def _serve_guest(self, conn: socket.socket, description: str, on_frame: FrameHandler) -> None:
        handshake = VmnetHandshake(mtu=self.mtu)
        mac = None
        with trio.move_on_after(self.handshake_timeout) as timer:
            mac = await self._negotiate(conn, handshake, description)
        if timer.cancelled_caught:
            log.warning("%s: handshake not finished within %g s (in state %s); disconnected",
                        description, self.handshake_timeout, handshake.state)
            return
        if mac is None:
            return
        try:
            if mac in self.attached:
                log.warning("%s: guest %s is also attached on %s (same UUID twice); both links share the MAC",
                            description, format_mac(mac), self.attached[mac].description)
            link = StreamLink(description, conn.fileno(), conn.fileno(), VMNET_PREFIX, handshake.max_packet_size,
                              min_frame=ETHERNET_MIN_FRAME, drops=self.drops)
            self.attached[mac] = link
            try:
                reason = await link.serve(self._from_guest(mac, on_frame), handshake.leftover)
                log.log(logging.INFO if reason == "peer disconnected" else logging.WARNING,
                        "guest detached: %s (%s)", description, reason)
            finally:
                if self.attached.get(mac) is link:
                    del self.attached[mac]
        finally:
            self._detach(mac, description)

    def _from_guest(self, mac: bytes, on_frame: FrameHandler) -> FrameHandler:
        """`on_frame` for the frames of the guest assigned `mac`: others' MACs are dropped and counted."""
        drops = self.drops

        def guest_frame(frame: bytes, link: GuestLink) -> None:
            if frame[6:12] != mac and len(frame) >= 14:  # a shorter one is the stack's to count
                drops["vmnet: source MAC is not the guest's (assigned at the handshake)"] += 1
                return
            on_frame(frame, link)

        return guest_frame

    def _attach(self, mac: bytes, preferred_ip: bytes | None, description: str) -> str | None:
        """Run the attach hooks; None once every hook accepted the guest, else the refusal
        (the hooks that had accepted it are told it detached)."""
        accepted: list[GuestDetachedHook | None] = []
        for on_attached, on_detached in self._hooks:
            refusal = None
            if on_attached is not None:
                try:
                    refusal = on_attached(mac, preferred_ip)
                except Exception:
                    log.exception("%s: a guest-attached hook failed", description)
                    refusal = "internal error while attaching the guest"
            if refusal is not None:
                self._run_detach_hooks(mac, accepted, description)
                return refusal
            accepted.append(on_detached)
        self._connections[mac] += 1
        return None

    def _detach(self, mac: bytes, description: str) -> None:
        """An accepted connection of `mac` closed; tell the hooks once the guest's last one has."""
        self._connections[mac] -= 1
        if self._connections[mac] <= 0:
            del self._connections[mac]
            self._run_detach_hooks(mac, [on_detached for _, on_detached in self._hooks], description)

    @staticmethod
    def _run_detach_hooks(mac: bytes, hooks: list[GuestDetachedHook | None], description: str) -> None:
        for on_detached in hooks:
            if on_detached is not None:
                try:
                    on_detached(mac)
                except Exception:
                    log.exception("%s: a guest-detached hook failed", description)

    async def _negotiate(self, conn: socket.socket, handshake: VmnetHandshake, description: str) -> bytes | None:
        """Run the handshake; the guest's MAC once attached, or None when the connection must close."""
        while True:
            await trio.lowlevel.wait_readable(conn)
            try:
                data = conn.recv(_HANDSHAKE_READ)
            except BlockingIOError:
                continue
            except OSError as e:
                log.info("%s: handshake failed: %s", description, e.strerror)
                return None
            if not data:
                log.info("%s: peer disconnected during the handshake (in state %s)", description, handshake.state)
                return None
            for event in handshake.receive(data):
                if isinstance(event, SendBytes):
                    if not await _send_all(conn, event.data, description):
                        return None
                elif isinstance(event, Rejected):
                    log.warning("%s: %s; disconnected", description, event.reason)
                    await _send_all(conn, event.data, description)
                    return None
                elif isinstance(event, GuestRequest):
                    return await self._decide(conn, handshake, event, description)

    async def _decide(self, conn: socket.socket, handshake: VmnetHandshake, request: GuestRequest,
                      description: str) -> bytes | None:
        mac = mac_for_uuid(request.uuid)
        preferred = format_ipv4(request.preferred_ip) if request.preferred_ip else None
        refusal = self._attach(mac, request.preferred_ip, description)
        if refusal is not None:
            log.warning("%s: guest %s refused: %s", description, request.uuid, refusal)
            await _send_all(conn, handshake.refuse(refusal), description)
            return None
        try:
            sent = await _send_all(conn, handshake.accept(mac), description)
        except BaseException:  # cancelled (shutdown, the handshake timeout) while sending
            self._detach(mac, description)
            raise
        if not sent:
            self._detach(mac, description)
            return None
        log.info("guest attached: %s (UUID %s%s, MAC %s%s, MTU %d)", description, request.uuid,
                 " generated for it" if request.uuid_generated else "", format_mac(mac),
                 f", preferred IP {preferred}" if preferred else "", handshake.mtu)
        return mac


async def _send_all(conn: socket.socket, data: bytes, description: str) -> bool:
    """Write all of `data` (a handshake message: a few hundred bytes); False if the peer is gone."""
    view = memoryview(data)
    while view:
        try:
            sent = conn.send(view)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(conn)
            continue
        except OSError as e:
            log.info("%s: peer gone during the handshake: %s", description, e.strerror)
            return False
        view = view[sent:]
    return True
