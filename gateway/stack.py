"""The gateway's sans-IO network stack: guest frames in, frames and service requests out.

`Stack.receive_frame(frame, now)` is the whole contract. It never reads a clock
or touches a socket, so a pcap replay, a fuzzer and a live TAP drive it alike.
It answers ARP (RFC 826) and ICMP echo (RFC 792) for the gateway's addresses,
hands UDP (RFC 768) for a bound port to that port's service, and drops and
counts everything else by reason. Nothing is ever forwarded: the only frames
it emits are its own answers, addressed to the guest that asked.

The hot path is written out by hand with precompiled `struct.Struct`s; the
codec modules hold the layouts and the builders.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from . import arp, ethernet, icmp, ipv4, udp
from .addresses import BROADCAST_MAC, parse_ipv4, parse_mac
from .checksum import is_valid_checksum
from .config import GatewayConfig
from .drops import Drop
from .service import GuestAddress, UdpReply, UdpService

__all__ = ["Stack"]

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


class Stack:
    """The gateway as seen from the guest's link. One per gateway; many guests may share it."""

    def __init__(self, config: GatewayConfig, services: Iterable[UdpService] = ()) -> None:
        self.config = config
        self.mac = parse_mac(config.gateway_mac)
        self.gateway_ip = parse_ipv4(config.gateway_ip)
        self.local_ips = frozenset(
            parse_ipv4(ip) for ip in (config.gateway_ip, config.host_alias_ip) if ip is not None)
        network = config.network
        self._network_int = int(network.network_address)
        self._netmask_int = int(network.netmask)
        self._subnet_broadcast_ip = network.broadcast_address.packed
        self._services: dict[int, UdpService] = {}
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

    @property
    def services(self) -> dict[int, UdpService]:
        return dict(self._services)

    # -- receiving ----------------------------------------------------------------------

    def receive_frame(self, frame: bytes, now: float) -> list[Any]:
        """Handle one Ethernet frame from a guest.

        Returns frames (``bytes``) to send to the guest, and any service
        requests (other objects) for the services' I/O drivers. An empty list
        means the frame was consumed or dropped (see `drops`).
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
            return self._receive_ipv4(frame, now)
        if ethertype == _ETH_ARP:
            return self._receive_arp(frame)
        return self._drop(_classify_ethertype(int.from_bytes(ethertype, "big")))

    def _drop(self, reason: Drop) -> list[Any]:
        self.drops[reason] += 1
        return []

    def _receive_arp(self, frame: bytes) -> list[Any]:
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
        if op != arp.OP_REQUEST:
            return self._drop(Drop.ARP_NOT_REQUEST)
        # "Swap hardware and protocol fields, putting the local hardware and protocol
        # addresses in the sender fields. Set the ar$op field to ares_op$REPLY."
        reply = (_ETH_HEADER.pack(sender_mac, self.mac, ethernet.ETHERTYPE_ARP)
                 + arp.build_packet(arp.OP_REPLY, self.mac, target_ip, sender_mac, sender_ip))
        return self._sent([ethernet.pad(reply)])

    def _sent(self, frames: list[Any]) -> list[Any]:
        self.frames_sent += len(frames)
        return frames

    def _receive_ipv4(self, frame: bytes, now: float) -> list[Any]:
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
        if not self._is_guest_source(src_ip, broadcast):
            return self._drop(Drop.BAD_SOURCE_IP)
        payload_start = 14 + ihl
        payload_end = 14 + total_len
        if protocol == ipv4.PROTO_UDP:
            return self._receive_udp(frame, src_ip, dst_ip, payload_start, payload_end, broadcast, now)
        if broadcast:
            return self._drop(Drop.IP_NOT_FOR_US)  # only UDP services take broadcasts
        if protocol == ipv4.PROTO_ICMP:
            return self._receive_icmp(frame, src_ip, dst_ip, payload_start, payload_end)
        if protocol == ipv4.PROTO_TCP:
            return self._drop(Drop.TCP_NOT_SERVED)
        return self._drop(Drop.UNKNOWN_PROTOCOL)

    def _is_guest_source(self, src_ip: bytes, broadcast: bool) -> bool:
        if src_ip == _UNSPECIFIED_IP:
            # RFC 2131 §4.1: a client with no address yet sends from 0.0.0.0 (to broadcast).
            return broadcast
        if src_ip in self.local_ips or src_ip == self._subnet_broadcast_ip:
            return False
        return int.from_bytes(src_ip, "big") & self._netmask_int == self._network_int

    def _receive_icmp(self, frame: bytes, src_ip: bytes, dst_ip: bytes, start: int, end: int) -> list[Any]:
        message = frame[start:end]
        if len(message) < icmp.HEADER_LEN:
            return self._drop(Drop.TRUNCATED_ICMP)
        if not is_valid_checksum(message):
            return self._drop(Drop.BAD_ICMP_CHECKSUM)
        if message[0] != icmp.TYPE_ECHO_REQUEST or message[1] != 0:
            return self._drop(Drop.ICMP_NOT_ECHO_REQUEST)
        # RFC 792: "the source and destination addresses are simply reversed, the type
        # code changed to 0, and the checksum recomputed." Identifier, sequence, data kept.
        reply = icmp.build_message(icmp.TYPE_ECHO_REPLY, 0, message[4:])
        return self._sent([self._ipv4_frame(frame[6:12], dst_ip, src_ip, ipv4.PROTO_ICMP, reply)])

    def _receive_udp(self, frame: bytes, src_ip: bytes, dst_ip: bytes, start: int, end: int,
                     broadcast: bool, now: float) -> list[Any]:
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
            if broadcast or self.config.unbound_udp == "drop":
                return self._drop(Drop.PORT_UNREACHABLE if not broadcast else Drop.BROADCAST_NOT_ACCEPTED)
            self.drops[Drop.PORT_UNREACHABLE] += 1
            return self._sent([self._port_unreachable(frame, src_ip, dst_ip, start)])
        if broadcast and not service.accepts_broadcast:
            return self._drop(Drop.BROADCAST_NOT_ACCEPTED)
        guest = GuestAddress(frame[6:12], src_ip, src_port)
        local_ip = self.gateway_ip if broadcast else dst_ip  # a broadcast is answered from the gateway
        outputs = service.handle_datagram(guest, local_ip, frame[start + udp.HEADER_LEN:datagram_end], now)
        if not outputs:
            return outputs
        result: list[Any] = []
        for item in outputs:
            if type(item) is bytes:
                reply = self.udp_frame_to_guest(guest, local_ip, dst_port, item)
                if reply is not None:
                    result.append(reply)
            elif type(item) is UdpReply:
                reply = self._addressed_udp_frame(guest, local_ip, dst_port, item)
                if reply is not None:
                    result.append(reply)
            else:
                result.append(item)
        return result

    def _port_unreachable(self, frame: bytes, src_ip: bytes, dst_ip: bytes, udp_start: int) -> bytes:
        # RFC 792 destination unreachable: 4 unused bytes, then the original IP header
        # and the first 64 bits of its data.
        quoted = frame[14:udp_start + _ICMP_QUOTE_DATA_LEN]
        message = icmp.build_message(icmp.TYPE_DEST_UNREACHABLE, icmp.CODE_PORT_UNREACHABLE, b"\0\0\0\0" + quoted)
        return self._ipv4_frame(frame[6:12], dst_ip, src_ip, ipv4.PROTO_ICMP, message)

    # -- sending ------------------------------------------------------------------------

    def receive_upstream(self, port: int, flow_id: int, payload: bytes, now: float) -> bytes | None:
        """An upstream's reply on a forwarding service's flow: the frame for the guest, or None
        if the service dropped it (see the service's `drops`)."""
        service = self._services.get(port)
        if service is None or not hasattr(service, "handle_upstream"):
            raise ValueError(f"no forwarding service is bound to UDP port {port}")
        reply = service.handle_upstream(flow_id, payload, now)
        if reply is None:
            return None
        flow = service.flows.get(flow_id)
        return self.udp_frame_to_guest(flow.guest, flow.local_ip, port, reply)

    def udp_frame_to_guest(self, guest: GuestAddress, local_ip: bytes, port: int, payload: bytes) -> bytes | None:
        """The frame carrying `payload` from `local_ip`:`port` to the guest; None if over the MTU."""
        if ipv4.HEADER_LEN + udp.HEADER_LEN + len(payload) > self.config.mtu:
            self.drops[Drop.REPLY_OVER_MTU] += 1
            return None
        datagram = udp.build_datagram(local_ip, guest.ip, port, guest.port, payload)
        self.frames_sent += 1
        return self._ipv4_frame(guest.mac, local_ip, guest.ip, ipv4.PROTO_UDP, datagram)

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
                     or (len(dst_ip) == 4 and self._is_guest_source(dst_ip, broadcast=False)))
        if not (to_asker and on_subnet):
            self.drops[Drop.REPLY_BAD_DESTINATION] += 1
            return None
        return self.udp_frame_to_guest(GuestAddress(dst_mac, dst_ip, guest.port), local_ip, port, reply.payload)

    def _ipv4_frame(self, dst_mac: bytes, src_ip: bytes, dst_ip: bytes, protocol: int, payload: bytes) -> bytes:
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

