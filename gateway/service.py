"""The plugin interface: a service bound to a UDP port on the gateway.

A service is sans-IO, like the stack: it is handed a guest datagram and `now`
and answers with what should happen, never touching a socket or a clock.

`handle_datagram` returns a list whose items are either

* ``bytes`` — a payload to send back to the guest, from the gateway address the
  guest wrote to and the service's port, to the guest's source port
  (the stack builds the UDP/IPv4/Ethernet frame); or
* any other object — a request for the service's own I/O driver (for example
  "forward this to the upstream server on flow 7"). The stack passes such
  objects through to its caller untouched; the runtime gives them to the
  service's `driver` (see `gateway.runtime`).

A service that needs I/O of its own (upstream sockets, timers) also provides
`make_driver(sink)`, returning an object with ``async def run(task_status)``
and ``submit(request)``; the sink lets the driver send payloads back to guests
(`sink.send_to_guest(guest, local_ip, port, payload)`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["GuestAddress", "UdpService", "GuestSink"]


@dataclass(frozen=True, slots=True)
class GuestAddress:
    """Where a guest datagram came from: the guest's MAC, IPv4 address and UDP port."""

    mac: bytes
    ip: bytes
    port: int


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


class GuestSink(Protocol):
    """What a service's I/O driver uses to reach the guest."""

    def send_to_guest(self, guest: GuestAddress, local_ip: bytes, port: int, payload: bytes) -> None: ...
