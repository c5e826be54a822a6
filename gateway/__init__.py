"""hostclock's gateway: a userspace virtual-network gateway that gives a VM guest its host's clock.

The public API, for a VM networking helper that embeds hostclock.

Sans-IO, for a helper that already owns the guest's frames and its event loop::

    from gateway import Config, Forward, build_stack

    stack = build_stack(Config())                       # ARP, ping, NTP forwarding, DHCP
    for output in stack.receive_frame(frame, now):      # now: your monotonic clock, in seconds
        if isinstance(output, bytes):
            send_to_guest(output)                       # an Ethernet frame
        else:                                           # a Forward: a datagram for the upstream
            send_upstream(output.flow.id, output.payload)   # e.g. to an SNTP server on loopback
    # when the upstream answers on that flow:
    frame = stack.receive_upstream(123, flow_id, reply, now)   # an Ethernet frame, or None if dropped

trio, for a helper that hands hostclock a transport::

    await gateway.serve(gateway.make_transport("--qemu-stream", "/run/vm0.sock"), Config())

Plugins (services on further UDP ports) are `UdpService`s; third-party ones are
found through the entry-point group ``hostclock.plugins`` (see `gateway.app.plugin_registry`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from gateway.app.assembly import build_stack
from gateway.app.config import Config, ConfigError, GatewayConfig, ResponderConfig, TimeConfig
from gateway.core.drops import Drop
from gateway.core.flows import Flow, FlowTable
from gateway.app.plugin_registry import ENTRY_POINT_GROUP, available_plugins, create_services
from gateway.core.service import GuestAddress, UdpService
from gateway.core.stack import Stack
from gateway.edges.transports import TRANSPORTS, GuestLink, Transport, TransportError, make_transport
from gateway.core.service import Forward

if TYPE_CHECKING:
    from gateway.app.runtime import Gateway

__all__ = [
    # configuration
    "Config", "ConfigError", "GatewayConfig", "TimeConfig", "ResponderConfig",
    # the sans-IO core
    "build_stack", "Stack", "Forward", "Flow", "FlowTable", "Drop",
    # plugins
    "UdpService", "GuestAddress", "ENTRY_POINT_GROUP", "available_plugins", "create_services",
    # trio edges
    "serve", "Gateway", "Transport", "GuestLink", "TransportError", "TRANSPORTS", "make_transport",
]


async def serve(transport: Transport, config: Config | None = None, *, plugins: tuple[str, ...] = (),
                services: tuple[UdpService, ...] = (),
                task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Run a gateway on `transport` until cancelled; `task_status.started()` gives the ready line."""
    from gateway.app.runtime import Gateway

    gateway = Gateway(config or Config(), transport, plugins=plugins, services=services)
    await gateway.run(task_status=task_status)


def __getattr__(name: str) -> Any:
    if name == "Gateway":  # imported on use: it pulls in the runtime's dependencies
        from gateway.app.runtime import Gateway
        return Gateway
    raise AttributeError(f"module 'gateway' has no attribute {name!r}")
