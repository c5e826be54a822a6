"""The virtual gateway's own configuration, as the guest sees it, and the error a bad one raises.

Defaults are vpnkit's (which Docker Desktop used): gateway 192.168.65.1 with
MAC f6:16:36:bc:f9:c6 on a /24, MTU 1500. Validation happens at construction,
so a bad address stops the program at start-up with one line naming the fix.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from gateway.core.addresses import parse_ipv4, parse_mac

__all__ = ["ConfigError", "GatewayConfig", "GuestClockConfig", "DEFAULT_WATCH_INTERVAL", "parse_host_port"]


class ConfigError(ValueError):
    """A configuration that cannot work; the message is one line that names the fix."""


def parse_host_port(text: str, *, what: str) -> tuple[str, int]:
    """'127.0.0.1:123' -> ('127.0.0.1', 123); IPv4 literals only (no name lookups)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{what} {text!r} is not HOST:PORT (for example 127.0.0.1:123)")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise ConfigError(f"{what} {text!r}: {host!r} is not an IPv4 address (give a literal such as 127.0.0.1)") from None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{what} {text!r}: port must be a number from 0 to 65535")
    return host, int(port_text)


@dataclass(frozen=True)
class GatewayConfig:
    """The virtual gateway as the guest sees it."""

    gateway_ip: str = "192.168.65.1"
    gateway_mac: str = "f6:16:36:bc:f9:c6"
    prefix_len: int = 24
    mtu: int = 1500
    #: a second local address (vpnkit's host alias is 192.168.65.2); answers ARP, ping and services too
    host_alias_ip: str | None = None
    #: what a UDP datagram to a port with no service gets. RFC 1122 §4.1.3.1: "If a datagram
    #: arrives addressed to a UDP port for which there is no pending LISTEN call, UDP SHOULD
    #: send an ICMP Port Unreachable message." So that is the default; "drop" is silent.
    unbound_udp: Literal["port-unreachable", "drop"] = "port-unreachable"
    #: a TAP's kernel drops, before queueing them, the frames the stack would only drop
    #: (`gateway.core.kernel_filter`); off, every frame reaches the stack and its drop counts
    kernel_filter: bool = True

    def __post_init__(self) -> None:
        for name in ("gateway_ip", "host_alias_ip"):
            value = getattr(self, name)
            if value is not None:
                try:
                    parse_ipv4(value)
                except ValueError as e:
                    raise ConfigError(f"{name}: {e}") from None
        try:
            mac = parse_mac(self.gateway_mac)
        except ValueError as e:
            raise ConfigError(f"gateway_mac: {e}") from None
        if mac[0] & 1:
            raise ConfigError(f"gateway_mac {self.gateway_mac} is a multicast address; use a unicast MAC (first byte even)")
        if not 8 <= self.prefix_len <= 30:
            raise ConfigError(f"prefix_len {self.prefix_len}: the guest subnet needs a prefix from /8 to /30")
        if not 576 <= self.mtu <= 65535:
            raise ConfigError(f"mtu {self.mtu}: choose a value from 576 to 65535 (1500 is usual)")
        if self.unbound_udp not in ("port-unreachable", "drop"):
            raise ConfigError(f"unbound_udp {self.unbound_udp!r}: choose 'port-unreachable' or 'drop'")
        network = self.network
        for name in ("gateway_ip", "host_alias_ip"):
            value = getattr(self, name)
            if value is None:
                continue
            address = ipaddress.IPv4Address(value)
            if address not in network or address in (network.network_address, network.broadcast_address):
                raise ConfigError(f"{name} {value} is not a host address of {network}; change it or --prefix-len")
        if self.host_alias_ip == self.gateway_ip:
            raise ConfigError("host_alias_ip equals gateway_ip; give the alias another address or leave it unset")

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.gateway_ip}/{self.prefix_len}", strict=False)


#: seconds between readings of a guest's clock when watching is asked for without an interval
DEFAULT_WATCH_INTERVAL = 10.0


@dataclass(frozen=True)
class GuestClockConfig:
    """Watching each guest's clock from the gateway (`gateway.core.guest_clock`): the ``[guest_clock]`` table.

    Off by default (`interval` 0): the gateway then sends a guest nothing it did not ask for.
    """

    #: seconds between readings of each guest's clock; 0: guest clocks are not watched
    interval: float = 0.0
    #: |offset| in seconds beyond which a guest's clock is logged as out of step (and back within half of it)
    threshold: float = 0.1

    def __post_init__(self) -> None:
        for name in ("interval", "threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise ConfigError(f"guest_clock {name} {value!r}: give a number of seconds")
        if self.interval != 0 and not 0.5 <= self.interval <= 86400:
            raise ConfigError(f"guest_clock interval {self.interval}: give 0.5 to 86400 seconds between readings "
                              "(or 0 not to watch)")
        if not 0.001 <= self.threshold <= 3600:
            raise ConfigError(f"guest_clock threshold {self.threshold}: give 0.001 to 3600 seconds")

    @property
    def enabled(self) -> bool:
        return self.interval > 0
