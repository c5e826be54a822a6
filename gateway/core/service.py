"""The plugin interface: a service bound to a UDP port on the gateway.

A service is sans-IO, like the stack: it is handed a guest datagram and `now`
and answers with what should happen, never touching a socket or a clock.

`handle_datagram` returns a list whose items are either

* ``bytes`` — a payload to send back to the guest, from the gateway address the
  guest wrote to and the service's port, to the guest's source port
  (the stack builds the UDP/IPv4/Ethernet frame); or
* a `UdpReply` — the same, but to an explicit IPv4 destination (and MAC) on the
  guest's link, for a guest that has no address yet (DHCP, RFC 2131 §4.1). The
  stack sends it only to the MAC that asked or to broadcast, and only to a guest
  subnet host or a broadcast address; anything else is dropped and counted.

That is all a plugin can answer with: a service replies to the datagram in
hand, on the link it came from, and has no I/O of its own. Forwarding to a
server on the host is the time service's alone (`plugins.ntp.time_service`): it
returns `gateway.edges.upstream.Forward` requests, which the stack passes through to
its caller, and the runtime's `gateway.edges.upstream.UpstreamDriver` carries them
and brings the replies back through `Stack.receive_upstream`. The runtime runs
that driver for the time service's port only: anything else a service returns
(a `Forward` for another port included) is dropped and counted as the
gateway's ("gateway: a service returned ..."), never raised.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from gateway.core.flows import Flow, FlowTable

__all__ = ["GuestAddress", "UdpReply", "UdpService", "Forward", "ForwardingService"]


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
