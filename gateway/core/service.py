"""The service interface: what a plugin's service on a gateway UDP port receives and returns.

A service is sans-IO, like the stack: it is handed a guest datagram and `now`
and answers with what should happen, never touching a socket or a clock.

`handle_datagram` returns a list whose items are

* ``bytes`` — a payload to send back to the guest, from the gateway address the
  guest wrote to and the service's port, to the guest's source port
  (the stack builds the UDP/IPv4/Ethernet frame);
* a `UdpReply` — the same, but to an explicit IPv4 destination (and MAC) on the
  guest's link, for a guest that has no address yet (DHCP, RFC 2131 §4.1). The
  stack sends it only to the MAC that asked or to broadcast, and only to a guest
  subnet host or a broadcast address; anything else is dropped and counted;
* a `Forward` — from a `ForwardingService` only: a datagram for the server on
  the host that the service's plugin names (`gateway.core.plugin.Upstream`). The
  stack passes it through to its caller, which carries it (the runtime's
  upstream driver, or a replay's answerer) and brings the reply back through
  `Stack.receive_upstream`, which calls the service's `handle_upstream`.

* a `gateway.core.guest_clock.GuestClockReading` — what the datagram says of
  the guest's clock (an NTP request's transmit timestamp), or a `GuestSeen` —
  news that a guest holds an address (a DHCP lease): for the gateway's guest
  clock watcher, if it has one (else discarded); a service returns them only
  while its `report_guest_clock` is set (`GuestClockReporter`). They are taken
  only for the guest that sent the datagram in hand.

Anything else a service returns is dropped and counted by the stack, never
raised. What the stack itself returns is `Output`: frames for the guest and
`Forward`s, nothing else.

A service may also implement `GuestLifecycle`, to hear of guests that a
transport identifies (vmnet) as they attach and detach.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from gateway.core.flows import Flow, FlowTable

__all__ = ["GuestAddress", "UdpReply", "UdpService", "Forward", "ForwardingService", "GuestLifecycle", "Output"]


@dataclass(frozen=True, slots=True)
class GuestAddress:
    """Where a guest datagram came from: the guest's MAC, IPv4 address and UDP port."""

    mac: bytes
    ip: bytes
    port: int


@dataclass(frozen=True, slots=True)
class UdpReply:
    """A payload from the service's port to the guest's source port, explicitly addressed.

    `dst_ip` is a host of the guest subnet or a broadcast address (255.255.255.255
    or the subnet's); `dst_mac` is the MAC the datagram came from (None, the default)
    or ff:ff:ff:ff:ff:ff. The frame is built, checksummed and MTU-checked as for bytes.
    """

    payload: bytes
    dst_ip: bytes
    dst_mac: bytes | None = None


@runtime_checkable
class UdpService(Protocol):
    """A service on the gateway, bound to one UDP port."""

    #: the gateway's UDP port this service is bound to
    port: int
    #: whether datagrams to the broadcast address reach it (DHCP: yes; NTP: no)
    accepts_broadcast: bool
    #: datagrams the service dropped, counted by reason
    drops: Counter[str]

    def handle_datagram(self, source: GuestAddress, local_ip: bytes, payload: bytes, now: float) -> list[Any]:
        """React to one datagram from the guest to `local_ip`:`port`."""
        ...


@dataclass(frozen=True, slots=True)
class Forward:
    """A service's request: send `payload` upstream on `flow`."""

    port: int  # the service's gateway port
    flow: Flow
    payload: bytes


@runtime_checkable
class ForwardingService(UdpService, Protocol):
    flows: FlowTable

    def handle_upstream(self, flow_id: int, payload: bytes, now: float) -> bytes | None:
        """Screen an upstream reply on a flow; the payload to pass to the guest, or None to drop it."""
        ...

    # Optional, not part of the protocol (a service without it is still one):
    # ``not_forwarded(request: Forward) -> None`` is called when the gateway could not send a
    # Forward upstream (no upstream yet, a full send buffer), so that whatever `handle_datagram`
    # counted for it (the ntp plugin's place under max_in_flight) is given back at once.


@runtime_checkable
class GuestLifecycle(Protocol):
    """A service that hears of guests a transport identifies (vmnet: a UUID and a preferred address)."""

    def guest_attached(self, mac: bytes, preferred_ip: bytes | None, now: float) -> str | None:
        """A guest with `mac` is attaching; a reason to refuse it, or None to let it in."""
        ...

    def guest_detached(self, mac: bytes) -> None:
        """The guest with `mac` has gone (its last connection closed)."""
        ...


#: what `Stack.receive_frame` returns: Ethernet frames for the guest, and requests for an upstream
Output = bytes | Forward
