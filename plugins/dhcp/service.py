"""The DHCP server on the gateway: UDP/67, answering the guest's DHCP client (RFC 2131 §4.3).

Sans-IO, like every service: a datagram and `now` in, `UdpReply`s out. The guest
gets vpnkit's settings, so that an unconfigured guest finds everything by itself:
an address from the guest subnet, subnet mask (1), router (3) = gateway,
broadcast address (28), **NTP server (42) = gateway**, interface MTU (26), and
DNS servers (6) only when configured (nothing on the gateway answers DNS).

The server is the only one on the guest's link, so it is authoritative: it
answers a REQUEST for an address it has no record of (after a gateway restart
the guest asks for its old address, which is its stable one anyway) with ACK
when the address is free, NAK when it is not. RFC 2131 §4.3.2 tells a
non-authoritative server in INIT-REBOOT "If the DHCP server has no record of
this client, then it MUST remain silent"; that rule exists for "peaceful
coexistence of non-communicating DHCP servers on the same wire", which a
virtual link with one gateway does not have (dnsmasq's dhcp-authoritative and
ISC dhcpd's `authoritative` make the same choice).

Replies are addressed by RFC 2131 §4.1 (giaddr is always 0: relayed requests
are dropped):

* "If the 'giaddr' field is zero and the 'ciaddr' field is nonzero, then the
  server unicasts DHCPOFFER and DHCPACK messages to the address in 'ciaddr'."
* "If 'giaddr' is zero and 'ciaddr' is zero, and the broadcast bit is set, then
  the server broadcasts DHCPOFFER and DHCPACK messages to 0xffffffff."
* "If the broadcast bit is not set and 'giaddr' is zero and 'ciaddr' is zero,
  then the server unicasts DHCPOFFER and DHCPACK messages to the client's
  hardware address and 'yiaddr' address."
* "In all cases, when 'giaddr' is zero, the server broadcasts any DHCPNAK
  messages to 0xffffffff."

Who may ask. RFC 2131 §7: "Malicious DHCP clients could masquerade as
legitimate clients ... Where dynamic allocation of resources is used, a
malicious client could claim all resources for itself, thereby denying
resources to legitimate clients." Two rules keep one guest from doing so:

* chaddr must be the source MAC of the frame the request came in. On a real
  network they differ only when a relay agent forwards the request (RFC 2131
  §4.1), and a relayed request (giaddr set) is refused already: no relay can
  sit on a virtual link with one gateway. So a chaddr that is not the sender's
  is a guest asking on behalf of a MAC that is not its own (300 DISCOVERs with
  300 chaddrs would take every address): dropped and counted (CHADDR_NOT_SENDER).
* One MAC holds addresses for at most `MAX_CLIENTS_PER_MAC` client identities
  at once (offered or bound). A client is known by its client identifier
  (option 61) when it sends one, so a guest could still ask under endless
  identifiers from its one MAC; past the cap, the MAC's oldest address is
  withdrawn (freed for others) before a new one is offered or bound, so a flood
  of DISCOVERs or REQUESTs from one guest churns its own addresses, never the
  others' (`withdrawn` counts them). A MAC normally has one identity at a time
  (its DHCP client's); four leaves room for an initramfs client and the
  system's, each with its own identifier.

A guest that also varies its source MAC frame by frame looks like many guests
to the gateway; limiting that needs the transport's knowledge of which guest a
frame came from (per connection), not the DHCP server's.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable

from gateway.core.addresses import BROADCAST_MAC, GuestSubnet, format_ipv4, parse_ipv4
from gateway.core.config import GatewayConfig
from gateway.core.guest_clock import GuestSeen
from gateway.core.service import GuestAddress, UdpReply

from plugins.dhcp.config import DhcpConfig
from plugins.dhcp.drops import DhcpDrop
from plugins.dhcp.leases import LeasePool, client_key
from plugins.dhcp.packet import (
    ACK, BOOTREPLY, BOOTREQUEST, DECLINE, DISCOVER, HTYPE_ETHERNET, INFORM, MESSAGE_TYPE_NAMES, NAK,
    OFFER, OPT_BROADCAST_ADDRESS, OPT_CLIENT_ID, OPT_DNS_SERVERS, OPT_INTERFACE_MTU, OPT_LEASE_TIME,
    OPT_MAX_MESSAGE_SIZE, OPT_MESSAGE, OPT_MESSAGE_TYPE, OPT_NTP_SERVERS, OPT_PARAMETER_REQUEST_LIST,
    OPT_REBINDING_TIME, OPT_RENEWAL_TIME, OPT_REQUESTED_IP, OPT_ROUTER, OPT_SERVER_ID, OPT_SUBNET_MASK,
    RELEASE, REQUEST, DhcpMessage, build_message, encoded_length, parse_message,
)

__all__ = ["DhcpService", "DHCP_SERVER_PORT", "MAX_CLIENTS_PER_MAC"]

DHCP_SERVER_PORT = 67
_ZERO_IP = b"\0\0\0\0"
_BROADCAST_IP = b"\xff\xff\xff\xff"
#: IPv4 (20) + UDP (8) headers, which the IP datagram sizes below include
_IP_UDP_HEADERS = 28
#: RFC 2131 §2: "a DHCP client must be prepared to receive DHCP messages with an
#: 'options' field of at least length 312 octets", i.e. an IP datagram of 576 octets.
#: RFC 2132 §9.10 (maximum DHCP message size): "The minimum legal value is 576 octets."
_MIN_DATAGRAM = 576
_NAK_MESSAGE = b"requested address is not available to this client"
#: client identities (option 61, else chaddr) one MAC may hold addresses for at once; see the module docstring
MAX_CLIENTS_PER_MAC = 4


class DhcpService:
    """UDP/67 on the gateway: DISCOVER -> OFFER, REQUEST -> ACK or NAK, RELEASE, DECLINE, INFORM -> ACK."""

    port = DHCP_SERVER_PORT
    accepts_broadcast = True

    def __init__(self, gateway: GatewayConfig, dhcp: DhcpConfig | None = None, *, max_records: int = 4096) -> None:
        dhcp = dhcp if dhcp is not None else DhcpConfig()
        #: also return a `GuestSeen` with each lease bound (set by a stack that watches guest clocks)
        self.report_guest_clock = False
        network = gateway.network
        self._network = network
        #: option 54, and the address RENEWING clients unicast to
        self.server_ip = parse_ipv4(gateway.gateway_ip)
        self.leases = LeasePool(network, _addresses_kept_from_pool(gateway),
                                lease_time=dhcp.lease_time, max_records=max_records)
        #: datagrams dropped, by reason
        self.drops: Counter[str] = Counter()
        #: replies made, by message type (DHCPOFFER, DHCPACK, DHCPNAK)
        self.sent: Counter[str] = Counter()
        #: messages acted on that get no reply by rule (DHCPDECLINE, RFC 2131 §4.3.3; DHCPRELEASE,
        #: §4.3.4), by type: so that every message is answered, dropped or counted here
        self.taken: Counter[str] = Counter()
        #: addresses withdrawn from a MAC past MAX_CLIENTS_PER_MAC identities (freed for other guests)
        self.withdrawn = 0
        #: MAC -> the client identities that got an address from it, oldest first (pruned lazily)
        self._clients_by_mac: dict[bytes, list[bytes]] = {}
        self._max_tracked_macs = max_records
        self._mtu = gateway.mtu
        lease_time = dhcp.lease_time
        # RFC 2131 §4.4.5: "T1 defaults to (0.5 * duration_of_lease). T2 defaults to
        # (0.875 * duration_of_lease)."
        self._lease_options = ((OPT_LEASE_TIME, lease_time.to_bytes(4, "big")),
                               (OPT_RENEWAL_TIME, (lease_time // 2).to_bytes(4, "big")),
                               (OPT_REBINDING_TIME, (lease_time * 7 // 8).to_bytes(4, "big")))
        #: what the server can tell a client, in the order sent when the client does not ask
        self._parameters: dict[int, bytes] = {
            OPT_SUBNET_MASK: network.netmask.packed,
            OPT_ROUTER: self.server_ip,
            OPT_BROADCAST_ADDRESS: network.broadcast_address.packed,
            OPT_NTP_SERVERS: self.server_ip,
            OPT_INTERFACE_MTU: gateway.mtu.to_bytes(2, "big"),
        }
        if dhcp.dns_servers:
            self._parameters[OPT_DNS_SERVERS] = b"".join(parse_ipv4(ip) for ip in dhcp.dns_servers)
        #: the guest subnet's host rule, shared with the stack (gateway.core.addresses.GuestSubnet)
        self._subnet = GuestSubnet.of_gateway(gateway)
        self._handlers: dict[int, Callable[[DhcpMessage, GuestAddress, float], list[UdpReply]]] = {
            DISCOVER: self._discover, REQUEST: self._request, DECLINE: self._decline,
            RELEASE: self._release, INFORM: self._inform,
        }

    def reserve(self, mac: bytes, ip: bytes, now: float | None = None) -> bool:
        """Hold `ip` for the guest with `mac` (a transport that knows the guest's preferred address)."""
        return self.leases.reserve(mac, ip, now)

    def unreserve(self, mac: bytes) -> None:
        """The guest with `mac` has gone: its reserved address goes back to the pool."""
        self.leases.unreserve(mac)

    # -- `gateway.core.service.GuestLifecycle`: guests a transport identifies (vmnet) ------

    def guest_attached(self, mac: bytes, preferred_ip: bytes | None, now: float) -> str | None:
        """A guest is attaching with a preferred address: hold it for its MAC, or say why not."""
        if preferred_ip is None:
            return None
        if not self.reserve(mac, preferred_ip, now):
            return f"preferred address {format_ipv4(preferred_ip)} is not available on {self._network}"
        return None

    def guest_detached(self, mac: bytes) -> None:
        self.unreserve(mac)

    # -- the service -------------------------------------------------------------------

    def handle_datagram(self, source: GuestAddress, local_ip: bytes, payload: bytes, now: float) -> list[UdpReply]:
        message = parse_message(payload)
        if type(message) is DhcpDrop:
            return self._drop(message)
        assert isinstance(message, DhcpMessage)
        reason = _screen(message)
        if reason is not None:
            return self._drop(reason)
        if message.client_mac != source.mac:
            return self._drop(DhcpDrop.CHADDR_NOT_SENDER)  # see the module docstring
        return self._handlers[message.message_type](message, source, now)

    def _drop(self, reason: DhcpDrop) -> list[UdpReply]:
        self.drops[reason] += 1
        return []

    # -- the message types (RFC 2131 §4.3) ------------------------------------------------

    def _discover(self, message: DhcpMessage, source: GuestAddress, now: float) -> list[UdpReply]:
        """§4.3.1: choose an address and offer it, with the lease and the parameters."""
        client, mac = self._client(message), message.client_mac
        self._make_room(client, mac, now)
        lease = self.leases.offer(client, mac, message.options.get(OPT_REQUESTED_IP), now)
        if lease is None:
            return self._drop(DhcpDrop.NO_ADDRESS_AVAILABLE)
        self._track(client, mac, now)
        return [self._reply(message, source, OFFER, lease.ip)]

    def _request(self, message: DhcpMessage, source: GuestAddress, now: float) -> list[UdpReply | GuestSeen]:
        """§4.3.2: SELECTING (server identifier present), INIT-REBOOT (requested address,
        no ciaddr), RENEWING or REBINDING (ciaddr): ACK the address or NAK it."""
        client = self._client(message)
        server_id = message.options.get(OPT_SERVER_ID)
        requested = message.options.get(OPT_REQUESTED_IP)
        if server_id is not None and server_id != self.server_ip:
            # "Servers not selected by the DHCPREQUEST message use the message as
            # notification that the client has declined that server's offer."
            offered = self.leases.lease_of(client)
            if offered is not None and not offered.bound:
                self.leases.release(client, offered.ip, now)
            return self._drop(DhcpDrop.OTHER_SERVER_SELECTED)
        # SELECTING and INIT-REBOOT: "'requested IP address' MUST be filled in";
        # RENEWING and REBINDING: "'requested IP address' option MUST NOT be filled in,
        # 'ciaddr' MUST be filled in with client's IP address".
        address = requested if requested is not None else message.ciaddr
        if address == _ZERO_IP:
            return self._drop(DhcpDrop.REQUEST_WITHOUT_ADDRESS)
        self._make_room(client, message.client_mac, now)
        lease = self.leases.bind(client, message.client_mac, address, now)
        if lease is None:
            # "Server SHOULD send a DHCPNAK message to the client if the 'requested IP
            # address' is incorrect, or is on the wrong network."
            return [self._nak(message)]
        self._track(client, message.client_mac, now)
        if self.report_guest_clock:  # the gateway's guest clock watcher watches the guest at its new address
            return [self._reply(message, source, ACK, lease.ip), GuestSeen(source.mac, lease.ip)]
        return [self._reply(message, source, ACK, lease.ip)]

    def _decline(self, message: DhcpMessage, source: GuestAddress, now: float) -> list[UdpReply]:
        """§4.3.3: "The server MUST mark the network address as not available"."""
        if not self._names_us(message):
            return self._drop(DhcpDrop.NOT_OUR_SERVER_ID)
        address = message.options.get(OPT_REQUESTED_IP)
        if address is None or not self.leases.decline(self._client(message), address, now):
            return self._drop(DhcpDrop.DECLINE_UNKNOWN)
        self.taken["DHCPDECLINE"] += 1
        return []

    def _release(self, message: DhcpMessage, source: GuestAddress, now: float) -> list[UdpReply]:
        """§4.3.4: "the server marks the network address as not allocated" (the address is in ciaddr)."""
        if not self._names_us(message):
            return self._drop(DhcpDrop.NOT_OUR_SERVER_ID)
        if not self.leases.release(self._client(message), message.ciaddr, now):
            return self._drop(DhcpDrop.RELEASE_UNKNOWN)
        self.taken["DHCPRELEASE"] += 1
        return []

    def _inform(self, message: DhcpMessage, source: GuestAddress, now: float) -> list[UdpReply]:
        """§4.3.5: parameters for a client configured by other means: "The server MUST NOT
        send a lease expiration time to the client and SHOULD NOT fill in 'yiaddr'"."""
        address = message.ciaddr if message.ciaddr != _ZERO_IP else source.ip
        if not self._subnet.is_host(address):
            return self._drop(DhcpDrop.INFORM_OFF_SUBNET)
        return [self._reply(message, source, ACK, _ZERO_IP, lease=False, unicast_to=address)]

    # -- replies ---------------------------------------------------------------------------

    def _reply(self, request: DhcpMessage, source: GuestAddress, message_type: int, yiaddr: bytes, *,
               lease: bool = True, unicast_to: bytes | None = None) -> UdpReply:
        """An OFFER or ACK (RFC 2131 §4.3.1, Table 3), with as many parameters as fit."""
        options = self._head_options(request, message_type)
        if lease:
            options.extend(self._lease_options)
        limit = self._size_limit(request)
        size = encoded_length(options)
        for code, value in self._parameters_in_order(request):
            if size + 2 + len(value) <= limit:
                options.append((code, value))
                size += 2 + len(value)
        # Table 3: 'ciaddr' is "'ciaddr' from DHCPREQUEST or 0" in a DHCPACK, 0 in a DHCPOFFER
        reply = DhcpMessage(op=BOOTREPLY, xid=request.xid, chaddr=request.chaddr, flags=request.flags,
                            ciaddr=request.ciaddr if message_type == ACK else _ZERO_IP,
                            yiaddr=yiaddr, giaddr=request.giaddr)
        self.sent[MESSAGE_TYPE_NAMES[message_type]] += 1
        dst_ip, dst_mac = self._destination(request, source, yiaddr if unicast_to is None else unicast_to)
        return UdpReply(build_message(reply, options), dst_ip, dst_mac)

    def _nak(self, request: DhcpMessage) -> UdpReply:
        """A DHCPNAK: Table 3 allows only the message type, server identifier, a message (56)
        and the client identifier; "the server broadcasts any DHCPNAK messages to 0xffffffff"."""
        options = self._head_options(request, NAK)
        options.append((OPT_MESSAGE, _NAK_MESSAGE))
        reply = DhcpMessage(op=BOOTREPLY, xid=request.xid, chaddr=request.chaddr, flags=request.flags,
                            giaddr=request.giaddr)
        self.sent[MESSAGE_TYPE_NAMES[NAK]] += 1
        return UdpReply(build_message(reply, options), _BROADCAST_IP, BROADCAST_MAC)

    def _head_options(self, request: DhcpMessage, message_type: int) -> list[tuple[int, bytes]]:
        options = [(OPT_MESSAGE_TYPE, bytes((message_type,))), (OPT_SERVER_ID, self.server_ip)]
        client_id = request.options.get(OPT_CLIENT_ID)
        if client_id is not None and len(client_id) <= 255:
            # RFC 6842 §3: "If the 'client identifier' option is present in a message received
            # from a client, the server MUST return the 'client identifier' option, unaltered"
            options.append((OPT_CLIENT_ID, client_id))
        return options

    def _parameters_in_order(self, request: DhcpMessage) -> list[tuple[int, bytes]]:
        """The requested parameters we have, in the client's order, then the rest of ours.

        RFC 2132 §9.8: "The DHCP server is not required to return the options in the
        requested order, but MUST try to insert the requested options in the order
        requested by the client." RFC 2131 §4.3.1: "The server MAY return parameters not
        requested by the client" -- vpnkit sends router, DNS and NTP server unasked.
        """
        ordered: dict[int, bytes] = {}
        for code in request.options.get(OPT_PARAMETER_REQUEST_LIST, b""):
            value = self._parameters.get(code)
            if value is not None and code not in ordered:
                ordered[code] = value
        for code, value in self._parameters.items():
            ordered.setdefault(code, value)
        return list(ordered.items())

    def _size_limit(self, request: DhcpMessage) -> int:
        """The longest DHCP message the client takes and the link carries.

        RFC 2132 §9.10: option 57 "specifies the maximum length DHCP message that it is
        willing to accept ... The minimum legal value is 576 octets." Like ISC dhcpd and
        dnsmasq, the value is read as the IP datagram size (576 is RFC 2131 §2's minimum
        IP datagram), so the IP and UDP headers come off it; without option 57, 576.
        """
        datagram = _MIN_DATAGRAM
        raw = request.options.get(OPT_MAX_MESSAGE_SIZE)
        if raw is not None and len(raw) == 2:
            datagram = max(datagram, int.from_bytes(raw, "big"))
        return min(datagram, self._mtu) - _IP_UDP_HEADERS

    def _destination(self, request: DhcpMessage, source: GuestAddress, yiaddr: bytes) -> tuple[bytes, bytes]:
        """(IPv4, MAC) for an OFFER or ACK, by RFC 2131 §4.1 (see the module docstring).

        A ciaddr outside the guest subnet (which a DISCOVER should not carry at all: RFC 2131
        Table 5 says 0) could not be reached, so the rules for a client without one apply.
        """
        if self._subnet.is_host(request.ciaddr):
            return request.ciaddr, source.mac
        if request.broadcast_flag or yiaddr == _ZERO_IP:
            return _BROADCAST_IP, BROADCAST_MAC
        return yiaddr, source.mac  # source.mac is chaddr: handle_datagram drops any other

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _client(message: DhcpMessage) -> bytes:
        return client_key(message.options.get(OPT_CLIENT_ID), message.client_mac)

    def _names_us(self, message: DhcpMessage) -> bool:
        server_id = message.options.get(OPT_SERVER_ID)
        return server_id is None or server_id == self.server_ip

    # -- how many identities one MAC may hold addresses for -----------------------------------

    def _holds(self, client: bytes, mac: bytes, now: float) -> bool:
        """Whether `client` holds an active address (offered or bound) taken from `mac`."""
        lease = self.leases.lease_of(client)
        return lease is not None and lease.mac == mac and lease.is_active(now)

    def _make_room(self, client: bytes, mac: bytes, now: float) -> None:
        """Before `client` gets an address from `mac`: if the MAC's other identities already hold
        MAX_CLIENTS_PER_MAC addresses, withdraw the oldest ones (their addresses go back to the pool)."""
        known = self._clients_by_mac.get(mac)
        if not known:
            return
        held = [c for c in known if c != client and self._holds(c, mac, now)]
        while len(held) >= MAX_CLIENTS_PER_MAC:
            oldest = held.pop(0)
            self.leases.release(oldest, self.leases.lease_of(oldest).ip, now)
            self.withdrawn += 1
        if client in known:
            held.append(client)
        self._clients_by_mac[mac] = held

    def _track(self, client: bytes, mac: bytes, now: float) -> None:
        """`client` now holds an address from `mac`: it becomes the MAC's newest identity."""
        known = self._clients_by_mac.setdefault(mac, [])
        if client in known:
            known.remove(client)
        known.append(client)
        if len(self._clients_by_mac) > self._max_tracked_macs:
            # at most max_records leases exist, so at most that many MACs hold one: forget the rest
            for stale in [m for m, clients in self._clients_by_mac.items()
                          if not any(self._holds(c, m, now) for c in clients)]:
                del self._clients_by_mac[stale]


def _screen(message: DhcpMessage) -> DhcpDrop | None:
    """Why a well-formed DHCP message is not a request this server answers, or None."""
    if message.op != BOOTREQUEST:
        return DhcpDrop.NOT_BOOTREQUEST
    if message.htype != HTYPE_ETHERNET or message.hlen != 6:
        return DhcpDrop.NOT_ETHERNET
    if message.giaddr != _ZERO_IP:
        return DhcpDrop.RELAYED
    if message.message_type in (OFFER, ACK, NAK):
        return DhcpDrop.SERVER_MESSAGE_TYPE
    return None


def _addresses_kept_from_pool(gateway: GatewayConfig) -> list[bytes]:
    """The gateway and the host alias. With no host alias configured, vpnkit's slot for it
    (the address after the gateway, 192.168.65.2) is kept free too, so guests start at .3
    as under vpnkit and turning the alias on later takes no guest's address."""
    gateway_ip = ipaddress.IPv4Address(gateway.gateway_ip)
    alias = gateway.host_alias_ip if gateway.host_alias_ip is not None else str(gateway_ip + 1)
    return [gateway_ip.packed, ipaddress.IPv4Address(alias).packed]
