"""hostclock's gateway: a userspace virtual-network gateway that gives a VM guest its host's clock.

The public API, for a VM networking helper that embeds hostclock.

Sans-IO, for a helper that already owns the guest's frames and its event loop::

    from gateway import Config, build_stack

    stack = build_stack(Config())                       # ARP, ping, NTP forwarding, DHCP
    for output in stack.receive_frame(frame, now):      # now: your monotonic clock, in seconds
        if type(output) is bytes:
            send_to_guest(output)                       # an Ethernet frame
        else:                                           # a Forward: a datagram for the upstream
            send_upstream(output.flow.id, output.payload)   # e.g. to an SNTP server on loopback
    # when the upstream answers on that flow:
    frame = stack.receive_upstream(123, flow_id, reply, now)   # an Ethernet frame, or None if dropped

trio, for a helper that hands hostclock a transport::

    await gateway.serve(gateway.make_transport("--qemu-stream", "/run/vm0.sock"), Config())

Watching each guest's clock (`gateway.core.guest_clock`): with
``Config().replace(guest_clock={"interval": 10})`` the stack carries a
`GuestClockWatcher` (`stack.guest_clock`). Sans-IO, the helper passes each
frame's link (any hashable key) and the host's Unix time in ns,
``stack.receive_frame(frame, now, link, time.time_ns())``, sends what
``watcher.on_timer(now, time.time_ns())`` returns when ``watcher.next_timer()``
comes (``(link, frame)`` pairs), and takes the readings (`GuestClockOffset`:
guest minus host, with its error) from ``watcher.take_offsets()``. Under trio,
`Gateway` does all that: ``Gateway.guest_clock.guests()`` and
``Gateway.counters()["guest_clock"]`` hold each guest's latest reading, and
``serve(..., guest_clock_log=PATH)`` writes the CSV `hostclock run
--guest-clock-log` writes.

Importing `gateway` and building a stack needs only the standard library: trio
and the edges (transports, sockets) load when `serve`, `Gateway` or a transport
name is first used. Plugins are found through the entry-point group
``hostclock.plugins`` (`gateway.app.plugin_registry`); a plugin is a
`gateway.core.plugin.Plugin` and its services are `UdpService`s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.app.assembly import assemble, build_stack
from gateway.app.config import Config, ConfigError, GatewayConfig, GuestClockConfig
from gateway.app.plugin_registry import ENTRY_POINT_GROUP, available_plugins, enabled_plugins
from gateway.core.drops import Drop
from gateway.core.flows import Flow, FlowTable
from gateway.core.guest_clock import (GuestClockOffset, GuestClockReading, GuestClockReporter, GuestClockStatus,
                                      GuestClockWatcher, GuestSeen)
from gateway.core.plugin import Contribution, Plugin, Upstream
from gateway.core.service import Forward, ForwardingService, GuestAddress, Output, UdpReply, UdpService
from gateway.core.stack import Stack

if TYPE_CHECKING:
    from gateway.app.runtime import Gateway, serve
    from gateway.edges.transports import TRANSPORTS, GuestLink, Transport, TransportError, make_transport

__all__ = [
    # configuration
    "Config", "ConfigError", "GatewayConfig", "GuestClockConfig",
    # the sans-IO core
    "build_stack", "assemble", "Stack", "Output", "Forward", "Flow", "FlowTable", "Drop",
    # watching guest clocks
    "GuestClockWatcher", "GuestClockOffset", "GuestClockStatus", "GuestClockReading", "GuestSeen",
    "GuestClockReporter",
    # plugins
    "Plugin", "Contribution", "Upstream", "UdpService", "ForwardingService", "UdpReply", "GuestAddress",
    "ENTRY_POINT_GROUP", "available_plugins", "enabled_plugins",
    # trio edges (loaded on first use)
    "serve", "Gateway", "Transport", "GuestLink", "TransportError", "TRANSPORTS", "make_transport",
]

#: names whose modules pull in trio and sockets: imported when first asked for
_EDGES = {
    "serve": "gateway.app.runtime", "Gateway": "gateway.app.runtime",
    "Transport": "gateway.edges.transports", "GuestLink": "gateway.edges.transports",
    "TransportError": "gateway.edges.transports", "TRANSPORTS": "gateway.edges.transports",
    "make_transport": "gateway.edges.transports",
}


def __getattr__(name: str) -> Any:
    module = _EDGES.get(name)
    if module is None:
        raise AttributeError(f"module 'gateway' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
