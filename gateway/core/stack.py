"""The gateway's sans-IO network stack: guest frames in, frames and forwarding requests out.

`Stack.receive_frame(frame, now)` is the whole contract. It never reads a clock
or touches a socket, so a pcap replay, a fuzzer and a live TAP drive it alike.
It answers ARP (RFC 826) and ICMP echo (RFC 792) for the gateway's addresses,
hands UDP (RFC 768) for a bound port to that port's service, and drops and
counts everything else by reason. With a guest clock watcher
(`gateway.core.guest_clock`), it also tells the watcher of every guest host a
frame came from, hands it ICMP timestamp replies (type 14) and the
`GuestClockReading`s and `GuestSeen`s services return; the watcher's own
probes are sent by the caller (`GuestClockWatcher.on_timer`). Nothing is ever forwarded: the only frames
it emits are its own answers, addressed to the guest that asked, and none is
larger than the MTU (every IPv4 reply is built, and size-checked, in one place).

As a host on the guest link it keeps RFC 1122's rules: unicast datagrams that
arrive in a link-layer broadcast are discarded (§3.3.6), sources that are not a
single guest host are discarded (§3.2.1.3), and ICMP errors never answer a
broadcast or an invalid source (§3.2.2) and are rate-limited (RFC 1812 §4.3.2.8).

The hot path is written out by hand with precompiled `struct.Struct`s; the
codec modules hold the layouts and the builders.
"""

from __future__ import annotations

from collections import Counter
import math
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.core import arp, ethernet, icmp, ipv4, udp
from gateway.core.addresses import BROADCAST_MAC, GuestSubnet, parse_ipv4, parse_mac
from gateway.core.checksum import is_valid_checksum
from gateway.core.config import GatewayConfig
from gateway.core.drops import Drop
from gateway.core.guest_clock import GuestClockReading, GuestClockReporter, GuestClockWatcher, GuestSeen
from gateway.core.service import Forward, ForwardingService, GuestAddress, Output, UdpReply, UdpService

__all__ = ["Stack", "TokenBucket", "ICMP_ERROR_RATE", "ICMP_ERROR_BURST"]

_ETH_HEADER = ethernet.HEADER
_ARP_PACKET = arp.PACKET
_IPV4_HEADER = ipv4.HEADER
_UDP_HEADER = udp.HEADER
_ETH_IPV4 = ethernet.ETHERTYPE_IPV4.to_bytes(2, "big")
_ETH_ARP = ethernet.ETHERTYPE_ARP.to_bytes(2, "big")
_UNSPECIFIED_IP = b"\0\0\0\0"
_LIMITED_BROADCAST_IP = b"\xff\xff\xff\xff"
# RFC 792: port unreachable quotes "the internet header plus the first 64 bits
# of the original datagram's data".
_ICMP_QUOTE_DATA_LEN = 8
#: ICMP errors the stack sends at most, per second on average and in one burst. RFC 1812
#: §4.3.2.8: "A router SHOULD also be able to limit the rate at which it sends other sorts
#: of ICMP error messages (Destination Unreachable, Redirect, Time Exceeded, Parameter
#: Problem)." The only error made here is port unreachable, and a guest that probes a few
#: closed ports never meets the limit; a flood to closed ports costs at most one small
#: reply per 10 ms. One bucket for the whole link: "How the limits are applied (e.g., per
#: router or per interface) is left to the implementor's discretion."
ICMP_ERROR_RATE = 100.0
ICMP_ERROR_BURST = 100


class TokenBucket:
    """A token bucket on the caller's clock (sans-IO): `rate` tokens a second, at most `burst` kept.

    It starts full. `take(now)` spends a token if there is one. `now` is any
    non-decreasing clock in seconds (the runtime's monotonic clock, a capture's
    timestamps); should it step back, the bucket just waits for it to catch up
    (no refill for the lost time, no error).
    """

    __slots__ = ("rate", "burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: int) -> None:
        if not (rate > 0 and math.isfinite(rate)) or burst < 1:
            raise ValueError(f"token bucket: rate {rate!r} must be a positive number and burst {burst!r} at least 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def take(self, now: float) -> bool:
        """Spend one token at time `now`: True if there was one (send), False (over the limit)."""
        last = self._last
        if last is None or now < last:
            self._last = now  # first use, or the clock stepped back: refill from here on
        elif now > last:
            self._tokens = min(float(self.burst), self._tokens + (now - last) * self.rate)
            self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Stack:
    """The gateway as seen from the guest's link. One per gateway; many guests may share it."""

    def __init__(self, config: GatewayConfig, services: Iterable[UdpService] = (), *,
                 icmp_error_rate: float = ICMP_ERROR_RATE, icmp_error_burst: int = ICMP_ERROR_BURST,
                 guest_clock: GuestClockWatcher | None = None) -> None:
        self.config = config
        self.mac = parse_mac(config.gateway_mac)
        self.gateway_ip = parse_ipv4(config.gateway_ip)
        #: the guest subnet's host rule, shared with the DHCP server (gateway.core.addresses.GuestSubnet)
        self.subnet = GuestSubnet.of_gateway(config)
        self.local_ips = self.subnet.local_ips
        self._is_guest_host = self.subnet.is_host
        self._subnet_broadcast_ip = config.network.broadcast_address.packed
        self._mtu = config.mtu
        self._icmp_errors = TokenBucket(icmp_error_rate, icmp_error_burst)
        self._services: dict[int, UdpService] = {}
        #: the bound services that forward to an upstream, by port (`Stack.receive_upstream`)
        self._forwarders: dict[int, ForwardingService] = {}
        #: the guest clock watcher fed by this stack, or None (guest clocks are not watched)
        self.guest_clock = guest_clock
        for service in services:
            self.bind(service)
        #: frames dropped, by reason
        self.drops: Counter[Drop] = Counter()
        self.frames_received = 0
        self.frames_sent = 0

    # -- services ---------------------------------------------------------------------

    def bind(self, service: UdpService) -> None:
        """Bind `service` to its UDP port on every gateway address."""
        if not isinstance(service, UdpService):
            raise TypeError(f"{service!r} is not a UdpService (needs port, accepts_broadcast, drops, handle_datagram)")
        if not 1 <= service.port <= 65535:
            raise ValueError(f"{service!r}: port {service.port} is not a UDP port")
        if service.port in self._services:
            raise ValueError(f"UDP port {service.port} is already bound to {self._services[service.port]!r}")
        self._services[service.port] = service
        if isinstance(service, ForwardingService):
            self._forwarders[service.port] = service
        if self.guest_clock is not None and isinstance(service, GuestClockReporter):
            service.report_guest_clock = True  # its readings and sightings now have somewhere to go

    @property
    def services(self) -> dict[int, UdpService]:
        return dict(self._services)

    @property
    def forwarders(self) -> dict[int, ForwardingService]:
        """The bound services that forward to an upstream, by port."""
        return dict(self._forwarders)

    def drop_counts(self, *others: Mapping[Any, int]) -> Counter[str]:
        """Every drop by reason: the stack's, its services', and those of `others` (the edges' counters).

        The one place drops are added up, for the runtime's counters and a replay's summary alike.
        """
        total: Counter[str] = Counter({str(reason): n for reason, n in self.drops.items()})
        for service in self._services.values():
            total.update({str(reason): n for reason, n in service.drops.items()})
        if self.guest_clock is not None:
            total.update(self.guest_clock.drops)
        for counter in others:
            total.update({str(reason): n for reason, n in counter.items()})
        return total

    # -- receiving ----------------------------------------------------------------------

    def receive_frame(self, frame: bytes, now: float, link: Any = None, wall_ns: int | None = None) -> list[Output]:
        """Handle one Ethernet frame from a guest.

        Returns frames (``bytes``) to send to the guest, and any `Forward`
        requests (a datagram for a forwarding service's upstream). An empty list
        means the frame was consumed or dropped (see `drops`).

        `link` (an opaque, hashable key: the link the frame came in on) and
        `wall_ns` (the host's Unix time of its arrival, in nanoseconds) are for
        the guest clock watcher, if there is one: it learns guests by link and
        stamps readings with the arrival time.
        """
        self.frames_received += 1
        if len(frame) < 14:
            return self._drop(Drop.TRUNCATED_ETHERNET)
        dst_mac = frame[0:6]
        if dst_mac != self.mac and dst_mac != BROADCAST_MAC:
            return self._drop(Drop.MULTICAST_MAC if frame[0] & 1 else Drop.NOT_FOR_US)
        if frame[6] & 1:
            return self._drop(Drop.BAD_SOURCE_MAC)
        ethertype = frame[12:14]
        if ethertype == _ETH_IPV4:
            return self._receive_ipv4(frame, now, link, wall_ns)
        if ethertype == _ETH_ARP:
            return self._receive_arp(frame, link, now)
        return self._drop(_classify_ethertype(int.from_bytes(ethertype, "big")))

    def _drop(self, reason: Drop) -> list[Output]:
        self.drops[reason] += 1
        return []

    def _receive_arp(self, frame: bytes, link: Any, now: float) -> list[Output]:
        # RFC 826, "Packet Reception": check hardware and protocol type, then whether
        # we are the target protocol address, then whether it is a request.
        if len(frame) < 14 + arp.PACKET_LEN:
            return self._drop(Drop.TRUNCATED_ARP)
        htype, ptype, hlen, plen, op, sender_mac, sender_ip, _, target_ip = _ARP_PACKET.unpack_from(frame, 14)
        if htype != arp.HTYPE_ETHERNET or ptype != arp.PTYPE_IPV4 or hlen != 6 or plen != 4:
            return self._drop(Drop.ARP_NOT_ETHERNET_IPV4)
        if target_ip not in self.local_ips:
            return self._drop(Drop.ARP_NOT_FOR_US)
        if sender_mac[0] & 1:
            return self._drop(Drop.ARP_BAD_SENDER)
        # The reply goes to ar$sha; one that is not the frame's source would make the gateway send
        # a frame to a host that did not ask (a guest reflecting replies at another): dropped, as
        # switches' ARP inspection does ("validate src-mac"). A host's own request always matches.
        if sender_mac != frame[6:12]:
            return self._drop(Drop.ARP_SENDER_NOT_SOURCE)
        if op != arp.OP_REQUEST:
            return self._drop(Drop.ARP_NOT_REQUEST)
        watcher = self.guest_clock
        if watcher is not None and self._is_guest_host(sender_ip):
            watcher.saw_guest(frame[6:12], sender_ip, link, now)
        # "Swap hardware and protocol fields, putting the local hardware and protocol
        # addresses in the sender fields. Set the ar$op field to ares_op$REPLY."
        reply = (_ETH_HEADER.pack(sender_mac, self.mac, ethernet.ETHERTYPE_ARP)
                 + arp.build_packet(arp.OP_REPLY, self.mac, target_ip, sender_mac, sender_ip))
        return self._sent([ethernet.pad(reply)])

    def _sent(self, frames: list[Output]) -> list[Output]:
        self.frames_sent += len(frames)
        return frames

    def _receive_ipv4(self, frame: bytes, now: float, link: Any, wall_ns: int | None) -> list[Output]:
        frame_len = len(frame)
        if frame_len < 14 + ipv4.HEADER_LEN:
            return self._drop(Drop.TRUNCATED_IPV4)
        (version_ihl, _tos, total_len, _ident, flags_fragment, _ttl, protocol, _checksum,
         src_ip, dst_ip) = _IPV4_HEADER.unpack_from(frame, 14)
        if version_ihl >> 4 != 4:
            return self._drop(Drop.BAD_IP_VERSION)
        ihl = (version_ihl & 0x0F) * 4
        if ihl < ipv4.HEADER_LEN:
            return self._drop(Drop.BAD_IHL)
        # Frames may carry Ethernet padding beyond the IP datagram; never less than it.
        if total_len < ihl or 14 + total_len > frame_len:
            return self._drop(Drop.BAD_TOTAL_LENGTH)
        if not is_valid_checksum(frame[14:14 + ihl]):
            return self._drop(Drop.BAD_IP_CHECKSUM)
        if flags_fragment & (ipv4.FLAG_MF | ipv4.FRAGMENT_OFFSET_MASK):
            return self._drop(Drop.FRAGMENT)
        broadcast = dst_ip == _LIMITED_BROADCAST_IP or dst_ip == self._subnet_broadcast_ip
        if dst_ip not in self.local_ips and not broadcast:
            return self._drop(Drop.IP_NOT_FOR_US)
        # RFC 1122 §3.3.6: "A host SHOULD silently discard a datagram that is received via a
        # link-layer broadcast (see Section 2.4) but does not specify an IP multicast or
        # broadcast destination address." Past receive_frame's MAC check the destination is
        # the gateway's (unicast) MAC or ff:ff:ff:ff:ff:ff, so the group bit means broadcast.
        # DHCP is unaffected: DISCOVER and REQUEST go to 255.255.255.255 in a broadcast frame,
        # renewals (RFC 2131 §4.4.5) are unicast IP in a unicast frame; ARP is not IPv4.
        if frame[0] & 1 and not broadcast:
            return self._drop(Drop.UNICAST_IN_LINK_BROADCAST)
        # The source must be a guest host (GuestSubnet.is_host: in the subnet, host part
        # neither 0 nor all ones, not a gateway address; RFC 1122 §3.2.1.3), or 0.0.0.0 to
        # broadcast: { 0, 0 } "MUST NOT be sent, except as a source address as part of an
        # initialization procedure by which the host learns its own IP address" (RFC 1122
        # §3.2.1.3), i.e. a DHCP client with no address yet (RFC 2131 §4.1).
        if src_ip == _UNSPECIFIED_IP:
            if not broadcast:
                return self._drop(Drop.BAD_SOURCE_IP)
        elif not self._is_guest_host(src_ip):
            return self._drop(Drop.BAD_SOURCE_IP)
        else:
            watcher = self.guest_clock
            if watcher is not None:
                watcher.saw_guest(frame[6:12], src_ip, link, now)
        payload_start = 14 + ihl
        payload_end = 14 + total_len
        if protocol == ipv4.PROTO_UDP:
            return self._receive_udp(frame, src_ip, dst_ip, payload_start, payload_end, broadcast, now, link, wall_ns)
        if broadcast:
            return self._drop(Drop.IP_NOT_FOR_US)  # only UDP services take broadcasts
        if protocol == ipv4.PROTO_ICMP:
            return self._receive_icmp(frame, src_ip, dst_ip, payload_start, payload_end, now, link, wall_ns)
        if protocol == ipv4.PROTO_TCP:
            return self._drop(Drop.TCP_NOT_SERVED)
        return self._drop(Drop.UNKNOWN_PROTOCOL)

    def _receive_icmp(self, frame: bytes, src_ip: bytes, dst_ip: bytes, start: int, end: int, now: float,
                      link: Any, wall_ns: int | None) -> list[Output]:
        message = frame[start:end]
        if len(message) < icmp.HEADER_LEN:
            return self._drop(Drop.TRUNCATED_ICMP)
        if not is_valid_checksum(message):
            return self._drop(Drop.BAD_ICMP_CHECKSUM)
        if message[0] == icmp.TYPE_TIMESTAMP_REPLY:
            # an answer to the guest clock watcher's probe (or not: the watcher counts what it drops)
            watcher = self.guest_clock
            if watcher is None:
                return self._drop(Drop.ICMP_TIMESTAMP_REPLY_UNWATCHED)
            watcher.receive_timestamp_reply(frame[6:12], src_ip, message, link, now, wall_ns)
            return []
        # A timestamp request (type 13) from a guest is not answered. RFC 1122 §3.2.2.8: "A host
        # MAY implement Timestamp and Timestamp Reply." The guest gets the host's time from NTP
        # on this gateway, to the nanosecond and with leap and synchronisation status; a
        # millisecond timestamp adds no service, and answering would tell every guest the
        # host's clock by a second way (the classic "ICMP timestamp disclosure" finding).
        if message[0] != icmp.TYPE_ECHO_REQUEST or message[1] != 0:
            return self._drop(Drop.ICMP_NOT_ECHO_REQUEST)
        # RFC 792: "the source and destination addresses are simply reversed, the type
        # code changed to 0, and the checksum recomputed." Identifier, sequence, data kept.
        reply = icmp.build_message(icmp.TYPE_ECHO_REPLY, 0, message[4:])
        reply_frame = self._ipv4_frame(frame[6:12], dst_ip, src_ip, ipv4.PROTO_ICMP, reply)
        if reply_frame is None:
            return []  # larger than the MTU: counted by _ipv4_frame
        return self._sent([reply_frame])

    def _receive_udp(self, frame: bytes, src_ip: bytes, dst_ip: bytes, start: int, end: int,
                     broadcast: bool, now: float, link: Any, wall_ns: int | None) -> list[Output]:
        if end - start < udp.HEADER_LEN:
            return self._drop(Drop.TRUNCATED_UDP)
        src_port, dst_port, udp_len, checksum = _UDP_HEADER.unpack_from(frame, start)
        if udp_len < udp.HEADER_LEN or start + udp_len > end:
            return self._drop(Drop.BAD_UDP_LENGTH)
        datagram_end = start + udp_len
        if checksum and not udp.is_valid_udp_checksum(src_ip, dst_ip, frame[start:datagram_end]):
            return self._drop(Drop.BAD_UDP_CHECKSUM)
        service = self._services.get(dst_port)
        if service is None:
            if broadcast:
                return self._drop(Drop.BROADCAST_NOT_ACCEPTED)
            if self.config.unbound_udp == "drop":
                return self._drop(Drop.PORT_UNREACHABLE)
            return self._port_unreachable(frame, src_ip, dst_ip, start, broadcast, now)
        if broadcast and not service.accepts_broadcast:
            return self._drop(Drop.BROADCAST_NOT_ACCEPTED)
        guest = GuestAddress(frame[6:12], src_ip, src_port)
        local_ip = self.gateway_ip if broadcast else dst_ip  # a broadcast is answered from the gateway
        outputs = service.handle_datagram(guest, local_ip, frame[start + udp.HEADER_LEN:datagram_end], now)
        if not outputs:
            return outputs
        # The one place where what a service returns is told apart (`gateway.core.service`).
        result: list[Output] = []
        for item in outputs:
            kind = type(item)
            if kind is bytes:
                reply = self.udp_frame_to_guest(guest, local_ip, dst_port, item)
                if reply is not None:
                    result.append(reply)
            elif kind is Forward and dst_port in self._forwarders:
                result.append(item)
            elif kind is UdpReply:
                reply = self._addressed_udp_frame(guest, local_ip, dst_port, item)
                if reply is not None:
                    result.append(reply)
            elif kind is GuestClockReading:
                if self.guest_clock is not None and item.guest == guest:  # a service speaks for its asker only
                    self.guest_clock.receive_reading(item, link, now, wall_ns)
            elif kind is GuestSeen:
                if self.guest_clock is not None and item.mac == guest.mac and self._is_guest_host(item.ip):
                    self.guest_clock.saw_guest(item.mac, item.ip, link, now, lease=True)
            else:
                self.drops[Drop.SERVICE_BAD_OUTPUT] += 1
        return result

    def _may_send_icmp_error(self, frame: bytes, src_ip: bytes, broadcast: bool) -> bool:
        """RFC 1122 §3.2.2: "An ICMP error message MUST NOT be sent as the result of receiving:
        an ICMP error message, or a datagram destined to an IP broadcast or IP multicast
        address, or a datagram sent as a link-layer broadcast, or a non-initial fragment, or a
        datagram whose source address does not define a single host -- e.g., a zero address,
        a loopback address, a broadcast address, a multicast address, or a Class E address."
        "THESE RESTRICTIONS TAKE PRECEDENCE OVER ANY REQUIREMENT ELSEWHERE".

        The only ICMP error made here answers UDP, and fragments are never accepted, so the
        first and fourth cases cannot arise. The others are already discarded before UDP is
        reached (link-layer broadcasts of unicast datagrams by §3.3.6, IP broadcasts by the
        service lookup, invalid sources by §3.2.1.3); they are checked again here, where the
        error is made, so that no later change of those paths can let a broadcast be answered.
        """
        return not frame[0] & 1 and not broadcast and self._is_guest_host(src_ip)

    def _port_unreachable(self, frame: bytes, src_ip: bytes, dst_ip: bytes, udp_start: int, broadcast: bool,
                          now: float) -> list[Output]:
        if not self._may_send_icmp_error(frame, src_ip, broadcast):
            return self._drop(Drop.ICMP_ERROR_NOT_ALLOWED)
        if not self._icmp_errors.take(now):
            return self._drop(Drop.ICMP_ERROR_RATE_LIMITED)
        # RFC 792 destination unreachable: 4 unused bytes, then the original IP header
        # and the first 64 bits of its data.
        quoted = frame[14:udp_start + _ICMP_QUOTE_DATA_LEN]
        message = icmp.build_message(icmp.TYPE_DEST_UNREACHABLE, icmp.CODE_PORT_UNREACHABLE, b"\0\0\0\0" + quoted)
        reply = self._ipv4_frame(frame[6:12], dst_ip, src_ip, ipv4.PROTO_ICMP, message)
        if reply is None:
            return []  # cannot happen (at most 96 bytes, MTU >= 576), but counted by _ipv4_frame if it did
        self.drops[Drop.PORT_UNREACHABLE] += 1
        return self._sent([reply])

    # -- sending ------------------------------------------------------------------------

    def receive_upstream(self, port: int, flow_id: int, payload: bytes, now: float) -> bytes | None:
        """An upstream's reply on a forwarding service's flow: the frame for the guest, or None
        if the service dropped it (see the service's `drops`)."""
        service = self._forwarders.get(port)
        if service is None:
            raise ValueError(f"no forwarding service is bound to UDP port {port}")
        reply = service.handle_upstream(flow_id, payload, now)
        if reply is None:
            return None
        flow = service.flows.get(flow_id)
        return self.udp_frame_to_guest(flow.guest, flow.local_ip, port, reply)

    def udp_frame_to_guest(self, guest: GuestAddress, local_ip: bytes, port: int, payload: bytes) -> bytes | None:
        """The frame carrying `payload` from `local_ip`:`port` to the guest; None (counted) if over the MTU."""
        datagram = udp.build_datagram(local_ip, guest.ip, port, guest.port, payload)
        frame = self._ipv4_frame(guest.mac, local_ip, guest.ip, ipv4.PROTO_UDP, datagram)
        if frame is not None:
            self.frames_sent += 1
        return frame

    def _addressed_udp_frame(self, guest: GuestAddress, local_ip: bytes, port: int, reply: UdpReply) -> bytes | None:
        """The frame for a service's `UdpReply`; None (counted) unless it stays with the guest that asked.

        The MAC must be the asker's or broadcast, the IPv4 destination a host of the
        guest subnet or a broadcast address: a reply never leaves the guest's link nor
        comes back to the gateway's own addresses.
        """
        dst_mac = guest.mac if reply.dst_mac is None else reply.dst_mac
        dst_ip = reply.dst_ip
        to_asker = dst_mac == guest.mac or dst_mac == BROADCAST_MAC
        on_subnet = (dst_ip == _LIMITED_BROADCAST_IP or dst_ip == self._subnet_broadcast_ip
                     or self._is_guest_host(dst_ip))
        if not (to_asker and on_subnet):
            self.drops[Drop.REPLY_BAD_DESTINATION] += 1
            return None
        return self.udp_frame_to_guest(GuestAddress(dst_mac, dst_ip, guest.port), local_ip, port, reply.payload)

    def _ipv4_frame(self, dst_mac: bytes, src_ip: bytes, dst_ip: bytes, protocol: int,
                    payload: bytes) -> bytes | None:
        """The Ethernet frame of an IPv4 datagram from the gateway; None, counted as REPLY_OVER_MTU,
        if the datagram would be larger than the MTU.

        Every IPv4 frame the stack sends is built here (echo replies, port unreachables, UDP
        replies of every service), so this one check covers them all. A datagram larger than
        the MTU could only be sent in fragments (RFC 791 §2.3), and this stack never
        fragments: an echo request larger than the MTU (a jumbo frame from a guest whose MTU
        is set above ours) gets no reply rather than a frame the link may not carry.
        """
        if ipv4.HEADER_LEN + len(payload) > self._mtu:
            self.drops[Drop.REPLY_OVER_MTU] += 1
            return None
        frame = (_ETH_HEADER.pack(dst_mac, self.mac, ethernet.ETHERTYPE_IPV4)
                 + ipv4.build_header(src_ip, dst_ip, protocol, len(payload)) + payload)
        return ethernet.pad(frame)


def _classify_ethertype(ethertype: int) -> Drop:
    if ethertype in (ethernet.ETHERTYPE_VLAN, ethernet.ETHERTYPE_QINQ):
        return Drop.VLAN_TAGGED
    if ethertype == ethernet.ETHERTYPE_IPV6:
        return Drop.IPV6
    if ethertype < 0x0600:
        return Drop.LLC_FRAME
    return Drop.UNKNOWN_ETHERTYPE

