"""Assembling a gateway from its configuration: the plugins' contributions, wired into one stack.

Every enabled plugin (`gateway.app.plugin_registry.enabled_plugins`: the
built-in ones and the third-party ones named) builds its `Contribution` from
its own settings; their services, and any an embedder adds, are bound to one
sans-IO `Stack`; and, if `[guest_clock]` asks for it, a guest clock watcher
(`stack.guest_clock`), which the services that can report to it then do. The
runtime, a replay and the embedding API all assemble here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.app.config import Config
from gateway.app.plugin_registry import enabled_plugins
from gateway.core.addresses import parse_ipv4, parse_mac
from gateway.core.config import ConfigError
from gateway.core.guest_clock import GuestClockWatcher
from gateway.core.plugin import Upstream
from gateway.core.service import UdpService
from gateway.core.stack import Stack

__all__ = ["Assembly", "assemble", "build_stack"]


@dataclass(frozen=True)
class Assembly:
    """A gateway's sans-IO parts: the stack, and where each forwarding port's requests go."""

    stack: Stack
    #: forwarding service's port -> its plugin's `Upstream`
    upstreams: dict[int, Upstream]


def assemble(config: Config | None = None, *, plugins: Iterable[str] = (),
             services: Iterable[UdpService] = ()) -> Assembly:
    """The stack with every enabled plugin's services (plus `services`), and their upstreams."""
    config = config or Config()
    bound: list[UdpService] = []
    upstreams: dict[int, Upstream] = {}
    for plugin in enabled_plugins(tuple(plugins)):
        contribution = plugin.contribute(config.settings_for(plugin), config.gateway)
        if contribution is None:
            continue
        ports = {service.port for service in contribution.services}
        for upstream in contribution.upstreams:
            if upstream.port not in ports:
                raise ConfigError(f"plugin {plugin.name!r} names an upstream for UDP port {upstream.port}, "
                                  "which none of its services is bound to")
            upstreams[upstream.port] = upstream
        bound.extend(contribution.services)
    bound.extend(services)
    watcher = None
    if config.guest_clock.enabled:
        watcher = GuestClockWatcher(parse_mac(config.gateway.gateway_mac), parse_ipv4(config.gateway.gateway_ip),
                                    interval=config.guest_clock.interval, threshold=config.guest_clock.threshold)
    try:
        stack = Stack(config.gateway, bound, guest_clock=watcher)
    except ValueError as e:  # two plugins on one port
        raise ConfigError(str(e)) from None
    return Assembly(stack, upstreams)


def build_stack(config: Config | None = None, *, plugins: Iterable[str] = (),
                services: Iterable[UdpService] = ()) -> Stack:
    """A sans-IO stack: every built-in plugin the config enables (ntp, dhcp), the named third-party
    `plugins`, and any extra `services` of the caller's."""
    return assemble(config, plugins=plugins, services=services).stack
