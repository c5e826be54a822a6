"""Assembling the gateway's sans-IO stack from a configuration.

The stack always carries the time service (UDP/123); then every built-in plugin
its configuration enables (DHCP), the third-party plugins named, and any
services an embedder adds. The runtime and the embedding API both build it here.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.app.config import Config
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
    time_service = TimeService(FlowTable(idle_timeout=config.time.flow_idle_timeout,
                                         max_flows=config.time.max_flows))
    return Stack(config.gateway, [time_service, *create_services(config, plugins), *services])
