"""Assembling the gateway's sans-IO stack from a configuration.

The stack always carries the time service (UDP/123); then every built-in plugin
its configuration enables (DHCP), the third-party plugins named, and any
services an embedder adds; and, if `[guest_clock]` asks for it, the guest clock
watcher (`stack.guest_clock`), with the time and DHCP services reporting to it. The runtime and the embedding API both build it here.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.app.config import Config
from gateway.core.addresses import parse_ipv4, parse_mac
from gateway.core.guest_clock import GuestClockWatcher
from gateway.core.flows import FlowTable
from gateway.app.plugin_registry import create_services
from gateway.core.service import UdpService
from gateway.core.stack import Stack

__all__ = ["build_stack"]


def build_stack(config: Config | None = None, *, plugins: Iterable[str] = (),
                services: Iterable[UdpService] = ()) -> Stack:
    """A sans-IO stack: the time service, the built-in plugins the config enables,
    the named third-party `plugins`, and any extra `services` of the caller's."""
    from plugins.ntp.time_service import TimeService

    config = config or Config()
    watching = config.guest_clock.enabled
    time_service = TimeService(FlowTable(idle_timeout=config.time.flow_idle_timeout,
                                         max_flows=config.time.max_flows), report_guest_clock=watching)
    watcher = None
    if watching:
        watcher = GuestClockWatcher(parse_mac(config.gateway.gateway_mac), parse_ipv4(config.gateway.gateway_ip),
                                    interval=config.guest_clock.interval, threshold=config.guest_clock.threshold)
    return Stack(config.gateway, [time_service, *create_services(config, plugins), *services], guest_clock=watcher)
